"""The Mistral tokenizer HARE reused (SentencePiece, 32,000 vocab), offline from mistral-common,
or any HF tokenizer a profile names (`model.tokenizer`).

`<unk>`, `<s>`, `</s>` are ids 0, 1, 2 in Mistral's model. `encoder(spec)` gives one interface
for both kinds: batch `encode` without special tokens, `vocab_size`, `bos_id`, `eos_id`, and a
`fingerprint` recorded with packed data. `token_counts` serves length filters;
`hf_tokenizer_dir` lays the tokenizer out as a directory that `AutoTokenizer.from_pretrained`
loads with identical ids, for checkpoints, training and evaluation.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

MISTRAL_MODEL = "tokenizer.model.v1"


def mistral_model_path() -> Path:
    return Path(str(importlib.resources.files("mistral_common") / "data" / MISTRAL_MODEL))


@lru_cache(maxsize=4)
def _processor(model_file: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=model_file)


@dataclass(frozen=True)
class Encoder:
    """Texts to ids, no special tokens added; BOS/EOS are the caller's decision."""

    spec: str  # "mistral" or the HF tokenizer path / hub id
    vocab_size: int
    bos_id: int
    eos_id: int
    fingerprint: str
    _impl: Any

    @property
    def sentencepiece(self) -> bool:
        return self.spec == "mistral" or self.spec.endswith(".model")

    def encode(self, texts: list[str], num_threads: int = -1) -> list[list[int]]:
        if not texts:
            return []
        if self.sentencepiece:
            return self._impl.encode(texts, num_threads=num_threads)
        return self._impl(texts, add_special_tokens=False)["input_ids"]

    def save(self, target: Path) -> Path:
        """Write the tokenizer into a checkpoint directory (AutoTokenizer-loadable)."""
        if self.sentencepiece:
            return hf_tokenizer_dir(target, None if self.spec == "mistral" else self.spec)
        self._impl.save_pretrained(target)
        return target


@lru_cache(maxsize=4)
def encoder(spec: str | None = None) -> Encoder:
    """None or "mistral": mistral-common's SentencePiece model; a `.model` path: that SentencePiece
    model; anything else: `AutoTokenizer.from_pretrained(spec)` (a local directory, or a hub id where
    a hub is reachable)."""
    spec = spec or "mistral"
    if spec == "mistral" or spec.endswith(".model"):
        path = mistral_model_path() if spec == "mistral" else Path(spec)
        sp = _processor(str(path))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return Encoder(spec, sp.vocab_size(), sp.bos_id(), sp.eos_id(), f"sentencepiece:{path.name}:{digest[:16]}", sp)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec)
    if tok.bos_token_id is None or tok.eos_token_id is None:
        raise ValueError(f"tokenizer {spec!r} has no BOS or EOS token; packing puts <s> … </s> around every document")
    digest = hashlib.sha256(repr(sorted(tok.get_vocab().items())).encode()).hexdigest()
    return Encoder(spec, len(tok), tok.bos_token_id, tok.eos_token_id, f"hf:{spec}:{digest[:16]}", tok)


def token_counts(texts: list[str], tokenizer: str | None = None) -> list[int]:
    """Tokens per text, without BOS/EOS."""
    return [len(ids) for ids in encoder(tokenizer).encode(texts)]


def hf_tokenizer_dir(target: Path, model_file: str | None = None) -> Path:
    """A directory holding `tokenizer.model`, loadable by `AutoTokenizer.from_pretrained`."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file or mistral_model_path(), target / "tokenizer.model")
    return target

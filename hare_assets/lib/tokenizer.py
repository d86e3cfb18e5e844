"""The Mistral tokenizer HARE reused (SentencePiece, 32,000 vocab), offline from mistral-common.

`<unk>`, `<s>`, `</s>` are ids 0, 1, 2. `token_counts` uses SentencePiece directly (fast, for
length filters); `hf_tokenizer_dir` lays the same model out as a directory that
`AutoTokenizer.from_pretrained` loads with identical ids, for training and evaluation.
"""

from __future__ import annotations

import importlib.resources
import shutil
from functools import lru_cache
from pathlib import Path

MISTRAL_MODEL = "tokenizer.model.v1"


def mistral_model_path() -> Path:
    return Path(str(importlib.resources.files("mistral_common") / "data" / MISTRAL_MODEL))


@lru_cache(maxsize=4)
def _processor(model_file: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=model_file)


def token_counts(texts: list[str], model_file: str | None = None) -> list[int]:
    """Tokens per text, without BOS/EOS."""
    if not texts:
        return []
    return [len(ids) for ids in _processor(model_file or str(mistral_model_path())).encode(texts)]


def hf_tokenizer_dir(target: Path, model_file: str | None = None) -> Path:
    """A directory holding `tokenizer.model`, loadable by `AutoTokenizer.from_pretrained`."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file or mistral_model_path(), target / "tokenizer.model")
    return target

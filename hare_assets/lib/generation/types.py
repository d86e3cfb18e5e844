"""Requests, results, statistics and the backend contract shared by every generation backend.

Backends raise `TransientError` for failures worth retrying (rate limits, server errors,
timeouts, lost connections) and `PermanentError` for ones that would fail again (a rejected
request, a malformed reply); the `Generator` turns both into per-request results, never into
an exception for the whole run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GenerationRequest:
    """One chat turn. `response_schema` (JSON Schema text) asks for a reply that conforms to it: backends that
    can constrain decoding do so, the others ignore it and the caller validates as always. `task` and `seed_text`
    only steer the extractive backend; `meta` rides along for the caller (provenance, topic, …) and is not part of
    the cache key."""

    prompt: str
    system: str | None = None
    max_tokens: int = 1024
    temperature: float = 0.8
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    seed: int | None = None
    response_schema: str | None = None
    task: str = "textbook"
    seed_text: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one request."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class GenerationResult:
    """The outcome of one request: `text` or `error`, never both. `attempts` is 0 for cache hits
    and for repeats of a request earlier in the same call."""

    key: str
    text: str | None
    error: str | None = None
    cached: bool = False
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class GenerationStats:
    """Counts for the last `Generator.generate` call.

    requests = cache_hits + duplicates + generated + failures. Token counts cover what the
    backend generated in this call (cache hits cost nothing and are not counted).
    """

    requests: int = 0
    cache_hits: int = 0
    duplicates: int = 0
    generated: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


class GenerationError(Exception):
    """A backend failure for one request (or one batch)."""


class TransientError(GenerationError):
    """Worth retrying: HTTP 429/5xx, timeouts, connection errors. `retry_after` (seconds) is the
    server's hint, when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(GenerationError):
    """Would fail again: HTTP 4xx other than 429, a malformed reply, a seed too short to use."""


class Backend:
    """Base for backends. Request-based backends (`concurrent = True`) implement `generate_one`
    and are driven from a thread pool; batch backends implement `generate_batch`."""

    kind: str = ""
    model: str = ""
    concurrent: bool = False

    def generate_one(self, request: GenerationRequest) -> Completion:
        entry = self.generate_batch([request])[0]
        if isinstance(entry, GenerationError):
            raise entry
        return entry

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Completion | GenerationError]:
        """One entry per request. An entry may be the error for that request alone; raising fails
        the whole batch (the Generator then retries it, and finally its requests one by one)."""
        out: list[Completion | GenerationError] = []
        for r in requests:
            try:
                out.append(self.generate_one(r))
            except GenerationError as exc:
                out.append(exc)
        return out

    def key_extra(self, request: GenerationRequest) -> dict[str, Any]:
        """Request fields beyond the standard ones that change this backend's output."""
        return {}

    def redact(self, message: str) -> str:
        """Remove secrets from an error message before it is logged or stored."""
        return message

    def close(self) -> None:
        """Release connections, models or engines."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, model={self.model!r})"

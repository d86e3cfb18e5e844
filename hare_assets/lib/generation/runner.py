"""The Generator: cache first, then the backend, with retries, bounded concurrency and progress.

Request-based backends (an OpenAI-compatible server) get one request per call from a pool of
`max_concurrency` threads; batch backends (transformers, vLLM, offline) get `batch_size`
requests of similar prompt length per call; a batch backend may return an error in place of one request's completion,
and a batch that fails as a whole (after its retries) is tried one request at a time, so one
bad request cannot sink its neighbours. Each reply is written to the cache by the thread
that received it, before anything else happens, so interrupting a run (Ctrl-C, a killed
process, an exception from the log callback) loses at most the requests still in flight.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import TypeVar

from hare_assets.lib.failpoints import failpoint
from hare_assets.lib.generation.cache import GenerationCache, cache_key
from hare_assets.lib.generation.types import (
    Backend,
    Completion,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    PermanentError,
    TransientError,
)

_logger = logging.getLogger("hare_assets.generation")
T = TypeVar("T")


@dataclass(frozen=True)
class _Outcome:
    completion: Completion | None
    error: str | None
    attempts: int


class Generator:
    def __init__(
        self,
        backend: Backend,
        cache: GenerationCache | None = None,
        max_concurrency: int = 8,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        batch_size: int = 32,
        log: Callable[[str], None] | None = None,
        log_every: int = 100,
    ):
        if max_concurrency < 1 or batch_size < 1 or max_retries < 0:
            raise ValueError("max_concurrency and batch_size must be >= 1, max_retries >= 0")
        self.backend = backend
        self.cache = cache
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.batch_size = batch_size
        self.log = log or _logger.info
        self.log_every = max(1, log_every)
        self.stats = GenerationStats()
        self._jitter = random.Random()

    def key(self, request: GenerationRequest) -> str:
        return cache_key(self.backend.kind, self.backend.model, request, self.backend.key_extra(request) or None)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in input order. Raises only when interrupted (or when the
        cache itself fails); a request that cannot be generated gets a result with `error`."""
        started = time.monotonic()
        stats = self.stats = GenerationStats(requests=len(requests))
        keys = [self.key(r) for r in requests]
        results: list[GenerationResult | None] = [None] * len(requests)
        hits = self.cache.get_many(keys) if self.cache is not None else {}
        first: dict[str, int] = {}
        todo: list[int] = []
        for i, (request, key) in enumerate(zip(requests, keys)):
            hit = hits.get(key)
            if hit is not None:
                results[i] = GenerationResult(key, hit.text, None, True, 0, hit.prompt_tokens, hit.completion_tokens, request.meta)
                stats.cache_hits += 1
            elif key not in first:
                first[key] = i
                todo.append(i)
        desc = f"{self.backend.kind}:{self.backend.model}"
        self.log(f"generation [{desc}]: {len(requests)} requests, {stats.cache_hits} cached, {len(todo)} to generate")
        failpoint("synthesis")

        def record(i: int, outcome: _Outcome, count_retries: bool = True) -> None:
            c = outcome.completion
            if c is not None:
                results[i] = GenerationResult(keys[i], c.text, None, False, outcome.attempts, c.prompt_tokens, c.completion_tokens, requests[i].meta)
                stats.generated += 1
                stats.prompt_tokens += c.prompt_tokens
                stats.completion_tokens += c.completion_tokens
            else:
                results[i] = GenerationResult(keys[i], None, outcome.error, False, outcome.attempts, meta=requests[i].meta)
                stats.failures += 1
            if count_retries:
                stats.retries += max(0, outcome.attempts - 1)
            done = stats.generated + stats.failures
            if done % self.log_every == 0 or done == len(todo):
                rate = done / max(time.monotonic() - started, 1e-9)
                self.log(
                    f"generation [{desc}]: {done}/{len(todo)} done, {stats.failures} failed, "
                    f"{stats.retries} retries, {rate:.1f} req/s"
                )

        try:
            if todo:
                run = self._run_concurrent if self.backend.concurrent else self._run_batches
                run(requests, keys, todo, record)
        finally:
            stats.elapsed_s = round(time.monotonic() - started, 3)
        for i, result in enumerate(results):
            if result is None:  # a repeat of an earlier request in this call
                source = results[first[keys[i]]]
                assert source is not None
                results[i] = replace(source, cached=False, attempts=0, meta=requests[i].meta)
                stats.duplicates += 1
        return results  # type: ignore[return-value]

    # --- request-based backends -------------------------------------------------------------

    def _run_concurrent(self, requests, keys, todo, record) -> None:
        stop = threading.Event()
        pending = iter(todo)
        inflight: dict[Future[_Outcome], int] = {}
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="hare-generate")
        try:
            while True:
                while len(inflight) < 2 * self.max_concurrency:  # a short queue: cheap to cancel
                    i = next(pending, None)
                    if i is None:
                        break
                    inflight[pool.submit(self._one, requests[i], keys[i], stop)] = i
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    record(inflight.pop(future), future.result())
        except BaseException:
            stop.set()  # no new retries; requests already on the wire finish and are cached
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _one(
        self, request: GenerationRequest, key: str, stop: threading.Event, prior: TransientError | None = None, prior_attempts: int = 0
    ) -> _Outcome:
        completion, error, attempts = self._with_retries(lambda: self.backend.generate_one(request), stop, prior, prior_attempts)
        if completion is not None and self.cache is not None:
            self.cache.put(key, completion.text, completion.prompt_tokens, completion.completion_tokens)
        return _Outcome(completion, error, attempts)

    # --- batch backends ---------------------------------------------------------------------

    def _run_batches(self, requests, keys, todo, record) -> None:
        stop = threading.Event()
        # similar prompt lengths share a batch, so little of a left-padded batch is padding
        todo = sorted(todo, key=lambda i: len(requests[i].prompt) + len(requests[i].system or ""))
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            batch = [requests[i] for i in idx]
            entries, error, attempts = self._with_retries(lambda: self.backend.generate_batch(batch), stop)
            self.stats.retries += max(0, attempts - 1)
            if entries is not None and len(entries) != len(batch):
                entries, error = None, f"backend returned {len(entries)} completions for {len(batch)} requests"
            if entries is None:
                if len(batch) == 1:
                    record(idx[0], _Outcome(None, error, attempts), count_retries=False)
                    continue
                self.log(f"generation: a batch of {len(batch)} failed ({error}); trying its requests one by one")
                for i in idx:
                    self._record_alone(i, requests[i], keys[i], stop, None, attempts, record)
                continue
            for i, entry in zip(idx, entries):
                if isinstance(entry, Completion):
                    if self.cache is not None:
                        self.cache.put(keys[i], entry.text, entry.prompt_tokens, entry.completion_tokens)
                    record(i, _Outcome(entry, None, attempts), count_retries=False)
                elif isinstance(entry, TransientError):  # retried on its own, after a backoff
                    self._record_alone(i, requests[i], keys[i], stop, entry, attempts, record)
                else:
                    message = str(entry) if isinstance(entry, PermanentError) else f"{type(entry).__name__}: {entry}"
                    record(i, _Outcome(None, self.backend.redact(message), attempts), count_retries=False)

    def _record_alone(self, i, request, key, stop, prior, prior_attempts, record) -> None:
        """Generate one request of a batch on its own; each call made here counts as a retry."""
        outcome = self._one(request, key, stop, prior, prior_attempts)
        self.stats.retries += outcome.attempts - prior_attempts
        record(i, outcome, count_retries=False)

    # --- retries ----------------------------------------------------------------------------

    def _with_retries(
        self, call: Callable[[], T], stop: threading.Event, prior: TransientError | None = None, prior_attempts: int = 0
    ) -> tuple[T | None, str | None, int]:
        """Call until success, a permanent error, or max_retries retries. `prior`/`prior_attempts`
        continue the count for a request whose earlier attempts happened inside a batch."""
        attempt, last = prior_attempts, prior
        while True:
            if last is not None:
                if attempt > self.max_retries or stop.is_set():
                    return None, self.backend.redact(f"gave up after {attempt} attempts: {last}"), attempt
                if stop.wait(self._delay(attempt, last.retry_after)):
                    return None, self.backend.redact(f"interrupted after {attempt} attempts: {last}"), attempt
            attempt += 1
            try:
                return call(), None, attempt
            except TransientError as exc:
                last = exc
            except PermanentError as exc:
                return None, self.backend.redact(str(exc)), attempt
            except Exception as exc:  # an unexpected failure is not retried: it would most likely repeat
                return None, self.backend.redact(f"{type(exc).__name__}: {exc}"), attempt

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with 'equal jitter'; a server's Retry-After is honoured up to backoff_max."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay = delay / 2 + self._jitter.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

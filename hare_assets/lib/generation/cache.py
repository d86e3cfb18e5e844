"""A SQLite generation cache: a key per (backend, model, messages, sampling) and each reply
committed as soon as it arrives, so an interrupted run resumes where it stopped.

One connection guarded by a lock serves every thread; WAL mode lets other processes read
(and queue their writes) while a run is writing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hare_assets.lib.generation.types import GenerationRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""
_CHUNK = 500  # keys per SELECT … IN (…): well under SQLite's variable limit


def cache_key(kind: str, model: str, request: GenerationRequest, extra: dict[str, Any] | None = None) -> str:
    """sha256 of the JSON of everything that determines the reply. Numbers are normalised so
    that temperature 1 and 1.0 share a key; `meta` is deliberately left out."""
    payload: dict[str, Any] = {
        "kind": kind,
        "model": model,
        "system": request.system,
        "prompt": request.prompt,
        "max_tokens": int(request.max_tokens),
        "temperature": float(request.temperature),
        "top_p": float(request.top_p),
        "seed": None if request.seed is None else int(request.seed),
    }
    if request.repetition_penalty != 1.0:  # only when set, so replies cached before it existed keep their keys
        payload["repetition_penalty"] = float(request.repetition_penalty)
    if request.response_schema is not None:
        payload["response_schema"] = request.response_schema
    if extra:
        payload["extra"] = extra
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedGeneration:
    text: str
    prompt_tokens: int
    completion_tokens: int


class GenerationCache:
    """`get`/`put` by key on a SQLite file (parent folders are created)."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process kills
            self._conn.execute(_SCHEMA)

    def get(self, key: str) -> CachedGeneration | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens FROM generations WHERE key = ?", (key,)
            ).fetchone()
        return CachedGeneration(*row) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedGeneration]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, CachedGeneration] = {}
        with self._lock:
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, text, prompt_tokens, completion_tokens FROM generations WHERE key IN ({marks})", chunk
                ).fetchall()
                found.update((k, CachedGeneration(t, p, c)) for k, t, p, c in rows)
        return found

    def put(self, key: str, text: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Store (or replace) one reply; committed before returning (autocommit)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO generations (key, text, prompt_tokens, completion_tokens, created_at) VALUES (?, ?, ?, ?, ?)",
                (key, text, int(prompt_tokens), int(completion_tokens), time.time()),
            )

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GenerationCache({self.path!r})"

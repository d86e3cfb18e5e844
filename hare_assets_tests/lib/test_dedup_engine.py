"""The out-of-core duplicate decision: equal to the in-memory one, and the same under a memory limit below its input."""

import random

import numpy as np
import polars as pl

from hare_assets.lib.dedup import MinHashParams, find_duplicates, signature_rows
from hare_assets.lib.dedup_engine import SIGNATURES, DuckDBLimits, decide, ingest_order
from hare_assets_tests.lib.test_dedup import _doc, _edit


def _store(tmp_path, texts: list[str], params: MinHashParams) -> tuple[list[str], list[str]]:
    n = len(texts)
    rows = {"ord": [ingest_order(0, 0, i) for i in range(n)], "block": ["web-00000"] * n, "source": ["web"] * n,
            "shard": ["s.jsonl"] * n, "row": list(range(n)), "doc_id": [f"d{i}" for i in range(n)]}
    pl.DataFrame({**rows, **signature_rows(texts, params)}, schema=SIGNATURES).write_parquet(tmp_path / "sig.parquet")
    pl.DataFrame({"source": ["web"] * n, "shard": ["s.jsonl"] * n, "row": list(range(n)), "text": texts}).write_parquet(tmp_path / "text.parquet")
    return [str(tmp_path / "sig.parquet")], [str(tmp_path / "text.parquet")]


def test_decisions_equal_the_in_memory_keep_rule(tmp_path):
    rng = random.Random(3)
    base = [_doc(i) for i in range(200)]
    texts = base + [_edit(base[i], rng.randint(1, 15), i) for i in range(0, 200, 4)] + [base[5].upper(), base[9]]
    rng.shuffle(texts)
    params = MinHashParams()
    decisions, stats = decide(*_store(tmp_path, texts, params), params, True, DuckDBLimits())
    got = sorted(zip(decisions["row"], decisions["kept_row"], decisions["reason"], decisions["similarity"].round(12)))
    expected = sorted((d.removed, d.kept, d.reason, round(d.similarity, 12)) for d in find_duplicates(texts, params))
    assert got == expected and stats.exact == 2 and stats.near >= 10


def test_a_memory_limit_below_the_input_gives_the_same_decisions(tmp_path):
    """300k signature rows with planted exact and banded duplicates (no verification, so no text): DuckDB at 32 MB
    (far below its input) spills and decides exactly as it does with 2 GB."""
    rng = np.random.default_rng(0)
    n, bands = 300_000, 20
    keys = rng.integers(0, 2**63, size=(n, bands), dtype=np.uint64)
    exact = rng.integers(0, 2**62, size=n).astype(str).astype(object)
    copies = rng.choice(n, size=(20_000, 2), replace=False)
    keys[copies[:, 1], :5] = keys[copies[:, 0], :5]  # near duplicates: five shared bands
    exact[copies[:2000, 1] ] = exact[copies[:2000, 0]]  # exact duplicates
    frame = pl.DataFrame({
        "ord": np.arange(n, dtype=np.int64), "block": ["web-00000"] * n, "source": ["web"] * n, "shard": ["s"] * n,
        "row": np.arange(n, dtype=np.int64), "doc_id": [f"d{i}" for i in range(n)], "exact": exact.tolist(),
        "shingles": np.full(n, 50, dtype=np.int64), "bands": keys.tolist(),
    }, schema=SIGNATURES)
    frame.write_parquet(tmp_path / "sig.parquet")
    assert frame.estimated_size() > 2 * (32 << 20)
    params = MinHashParams(verify=False)
    small, _ = decide([str(tmp_path / "sig.parquet")], [], params, True, DuckDBLimits(memory_limit="32MB", threads=1))
    large, stats = decide([str(tmp_path / "sig.parquet")], [], params, True, DuckDBLimits(memory_limit="2GB"))
    assert small.equals(large)
    assert stats.exact == 2000 and stats.near == 18_000

"""The corpus-wide duplicate decision, out of core: DuckDB over stored MinHash signatures.

Each block stores one signature row per clean document (`ord`, provenance, the
exact-match key, the shingle count and one key per band; no text). `ord` orders
documents as they were first ingested (block sequence, shard, row), the order the
keep rule of `lib/dedup.py` walks. Exact groups, band buckets, candidate pairs and
the Jaccard verification are SQL over a database file with a memory limit, so
DuckDB spills to disk instead of holding the corpus. Only the candidates' text is
read back (one streamed pass over the clean parts, shingled batch by batch); only
the verified pairs reach Python, for the sequential keep rule. The decisions equal
`find_duplicates` on the same documents in the same order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from hare_assets.lib.dedup import EXACT, NEAR, MinHashParams, first_ingested_wins, shingles

SIGNATURES = {
    "ord": pl.Int64, "block": pl.String, "source": pl.String, "shard": pl.String, "row": pl.Int64, "doc_id": pl.String,
    "exact": pl.String, "shingles": pl.Int64, "bands": pl.List(pl.UInt64),
}  # fmt: skip
DECISIONS = {
    "doc_id": pl.String, "block": pl.String, "source": pl.String, "shard": pl.String, "row": pl.Int64, "reason": pl.String,
    "similarity": pl.Float64, "kept_doc_id": pl.String, "kept_block": pl.String, "kept_source": pl.String,
    "kept_shard": pl.String, "kept_row": pl.Int64,
}  # fmt: skip
_SHARD_BITS, _ROW_BITS = 16, 24


def ingest_order(seq: int, shard_index: int, row: int) -> int:
    """One int64 that sorts like (block sequence, shard within the block, row)."""
    if shard_index >= 1 << _SHARD_BITS or row >= 1 << _ROW_BITS:
        raise ValueError(f"shard {shard_index} row {row}: a block holds at most {1 << _SHARD_BITS} shards of "
                         f"{1 << _ROW_BITS} records; lower ingest.block_bytes or split the shard")
    return (seq << (_SHARD_BITS + _ROW_BITS)) | (shard_index << _ROW_BITS) | row


@dataclass(frozen=True)
class DuckDBLimits:
    """What the corpus-wide decision may use: DuckDB spills to `temp_dir` beyond `memory_limit`."""

    memory_limit: str = "1GB"
    threads: int = 2
    temp_dir: str | None = None  # spill folder; default: a temporary folder


@dataclass(frozen=True)
class DecisionStats:
    documents: int
    candidate_pairs: int
    verified_pairs: int
    exact: int
    near: int


def decide(
    signature_files: list[str], text_files: list[str], params: MinHashParams, exact: bool, engine: DuckDBLimits,
    log: Callable[[str], None] = print,
) -> tuple[pl.DataFrame, DecisionStats]:
    """Every removed document with the kept document it duplicates (schema DECISIONS)."""
    if not signature_files:
        return pl.DataFrame(schema=DECISIONS), DecisionStats(0, 0, 0, 0, 0)
    with tempfile.TemporaryDirectory(prefix="hare-dedup-", dir=engine.temp_dir) as work:
        con = duckdb.connect(str(Path(work) / "dedup.duckdb"))
        con.execute(f"SET memory_limit = '{engine.memory_limit}'")
        con.execute(f"SET temp_directory = '{Path(work) / 'spill'}'")
        con.execute(f"SET threads = {int(engine.threads)}")
        con.execute("SET preserve_insertion_order = false")
        con.execute("CREATE TABLE docs AS SELECT * FROM read_parquet($files)", {"files": signature_files})
        documents = con.execute("SELECT count(*) FROM docs").fetchone()[0]
        if exact:
            con.execute("""CREATE TABLE exact_dups AS
                SELECT d.ord, k.kept FROM docs d JOIN (SELECT exact, min(ord) AS kept FROM docs GROUP BY exact) k USING (exact)
                WHERE d.ord <> k.kept""")
        else:
            con.execute("CREATE TABLE exact_dups (ord BIGINT, kept BIGINT)")
        con.execute("""CREATE TABLE candidates AS
            SELECT ord, bands FROM docs ANTI JOIN exact_dups USING (ord) WHERE shingles > 0""")
        con.execute("CREATE TABLE band_pairs (head BIGINT, ord BIGINT)")
        for band in range(1, params.bands + 1):  # one band at a time: a working set of one key per document
            con.execute(f"""INSERT INTO band_pairs SELECT h.head, c.ord
                FROM (SELECT ord, bands[{band}] AS key FROM candidates) c
                JOIN (SELECT bands[{band}] AS key, min(ord) AS head FROM candidates GROUP BY 1 HAVING count(*) > 1) h USING (key)
                WHERE c.ord <> h.head""")
        con.execute("CREATE TABLE pairs AS SELECT DISTINCT head, ord FROM band_pairs")
        candidates = con.execute("SELECT count(*) FROM pairs").fetchone()[0]
        log(f"dedup: {documents} documents, {candidates} candidate pairs")
        verified = _verify(con, text_files, params, Path(work)) if params.verify else con.execute(
            "SELECT head, ord, 1.0 FROM pairs ORDER BY ord, head").fetchnumpy()
        near = first_ingested_wins(zip(*(verified[c].tolist() for c in verified)))
        con.execute("CREATE TABLE near_dups (ord BIGINT, kept BIGINT, similarity DOUBLE)")
        if near:
            con.register("near_frame", pa.table({"ord": [d.removed for d in near], "kept": [d.kept for d in near],
                                                 "similarity": [d.similarity for d in near]}))
            con.execute("INSERT INTO near_dups SELECT * FROM near_frame")
        decisions = con.sql(f"""
            WITH removed AS (
                SELECT ord, kept, '{EXACT}' AS reason, 1.0 AS similarity FROM exact_dups
                UNION ALL SELECT ord, kept, '{NEAR}', similarity FROM near_dups)
            SELECT d.doc_id, d.block, d.source, d.shard, d.row, r.reason, r.similarity,
                   k.doc_id AS kept_doc_id, k.block AS kept_block, k.source AS kept_source, k.shard AS kept_shard, k.row AS kept_row
            FROM removed r JOIN docs d ON d.ord = r.ord JOIN docs k ON k.ord = r.kept ORDER BY d.ord""").pl()
        con.close()
    stats = DecisionStats(documents, candidates, len(next(iter(verified.values()), [])),
                          int((decisions["reason"] == EXACT).sum()), len(near))
    return decisions.cast(DECISIONS), stats


def _verify(con: duckdb.DuckDBPyConnection, text_files: list[str], params: MinHashParams, work: Path,
            batch: int = 2000) -> dict[str, np.ndarray]:
    """Exact Jaccard of each candidate pair: the candidates' shingle sets go to a Parquet file batch by
    batch, and DuckDB joins and intersects them; pairs at or above the threshold come back."""
    con.execute("""CREATE TABLE needed AS SELECT d.ord, d.source, d.shard, d.row FROM docs d
        JOIN (SELECT head AS ord FROM pairs UNION SELECT ord FROM pairs) p USING (ord)""")
    path = work / "shingles.parquet"
    schema = pa.schema([("ord", pa.int64()), ("sh", pa.list_(pa.uint64()))])
    reader = con.cursor().sql("""SELECT n.ord, c.text FROM read_parquet($files) c
        JOIN needed n ON c.source = n.source AND c.shard = n.shard AND c.row = n.row""", params={"files": text_files})
    with pq.ParquetWriter(path, schema) as writer:
        for records in reader.to_arrow_reader(batch):
            ords, texts = records.column(0).to_pylist(), records.column(1).to_pylist()
            sets = [shingles(t, params.ngram) for t in texts]
            writer.write_table(pa.table({"ord": ords, "sh": [s.tolist() for s in sets]}, schema=schema))
    return con.execute(f"""
        WITH sh AS (SELECT * FROM read_parquet('{path}')),
        j AS (SELECT p.head, p.ord, len(list_intersect(a.sh, b.sh)) AS inter, len(a.sh) AS na, len(b.sh) AS nb
              FROM pairs p JOIN sh a ON a.ord = p.head JOIN sh b ON b.ord = p.ord)
        SELECT head, ord, inter / (na + nb - inter) AS similarity FROM j
        WHERE inter / (na + nb - inter) >= {float(params.threshold)!r} ORDER BY ord, head""").fetchnumpy()

"""D1 work on one block: each shard streamed in batches into its own part files, resumable per shard.

A stage (ingest, clean, signatures, dedup, decontamination) maps a shard's input to
part files of its output tables, batch by batch, and then writes the shard's
*receipt* (its counts and the fingerprint of what it was made from). A rerun skips
a shard whose receipt carries the same fingerprint, so a killed run redoes only the
shards it had not finished. The asset commits the block (manifests written last)
once every shard has its receipt. Shards run in a `lib.shard_pools` pool: this
machine's processes or a Ray cluster.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from hare_assets.lib import schemas
from hare_assets.lib.curation import clean_frame
from hare_assets.lib.dedup import MinHashParams, _permutation_seeds, signature_rows
from hare_assets.lib.dedup_engine import SIGNATURES, ingest_order
from hare_assets.lib.failpoints import failpoint
from hare_assets.lib.profile import Profile, SourceConfig
from hare_assets.lib.readers import BATCH_RECORDS, UNREADABLE, iter_shard
from hare_assets.lib.shard_pools import ShardPool
from hare_assets.lib.storage import TableStore

READ_ATTEMPTS = 3


@dataclass(frozen=True)
class PartJob:
    """One shard of a block, as a stage sees it."""

    part: str  # the shard's safe file name (`lib.shards.safe_name`)
    shard: str
    source: str
    bytes: int
    fingerprint: str  # of the shard's content and the stage's settings: a receipt that matches it is done
    seq: int = 0  # the block's ingestion sequence
    index: int = 0  # the shard's position in its block


def stage_fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BlockRun:
    receipts: dict[str, dict]  # part -> receipt, in part order
    read: list[str]  # shards processed in this run
    skipped: list[str]  # shards whose receipt was already there
    where: str  # where they were processed (`ShardPool.where`)

    def total(self, key: str) -> int:
        return sum(r.get(key, 0) for r in self.receipts.values())

    def counts(self, key: str) -> dict[str, int]:
        total: Counter[str] = Counter()
        for receipt in self.receipts.values():
            total.update(receipt.get(key, {}))
        return dict(sorted(total.items()))


def run_block(tables: TableStore, table: str, block: str, jobs: list[PartJob], work: Callable[[PartJob], dict],
              pool: ShardPool, log: Callable[[str], None] = print) -> BlockRun:
    """Run `work` on every shard of the block that has no matching receipt in `table`, in `pool`, write each
    receipt as its shard completes, and return them all. `work` must be picklable for a pool of processes."""
    receipts, pending = {}, []
    for job in jobs:
        receipt = tables.receipt(table, block, job.part)
        if receipt is not None and receipt.get("fingerprint") == job.fingerprint:
            receipts[job.part] = receipt
        else:
            pending.append(job)
    if len(pending) < len(jobs):
        log(f"{table}[{block}]: {len(jobs) - len(pending)} of {len(jobs)} shards done before, {len(pending)} to do")
    where = pool.where(pending) if pending else "nothing to do"
    if pending:
        log(f"{table}[{block}]: {len(pending)} shards on {where}")
    for job, receipt in pool.map(work, pending):
        receipt = {**receipt, "fingerprint": job.fingerprint, "shard": job.shard}
        tables.write_receipt(table, block, job.part, receipt)
        failpoint("shard_done")
        receipts[job.part] = receipt
        log(f"{table}[{block}]: shard {len(receipts)}/{len(jobs)} {job.shard} done")
    ordered = {job.part: receipts[job.part] for job in jobs}
    return BlockRun(ordered, [j.shard for j in pending], [j.shard for j in jobs if j not in pending], where)


# What the forkserver of a local pool imports before it forks workers: the stages and their models.
WORKER_PRELOAD = (__name__, "hare_assets.lib.pool_preload")


def iter_part(tables: TableStore, table: str, block: str, part: str, columns: list[str] | None = None,
              batch: int = BATCH_RECORDS) -> Iterator[pl.DataFrame]:
    """A part file in batches of rows."""
    with tables.fs.open(tables.part_path(table, block, part), "rb") as fh:
        for records in pq.ParquetFile(fh).iter_batches(batch_size=batch, columns=columns):
            yield pl.from_arrow(records)


class _Retry(Exception):
    pass


def ingest_part(tables: TableStore, table: str, block: str, src: SourceConfig, max_doc_bytes: int, batch: int,
                job: PartJob) -> dict:
    """Read one shard into `table` and `table__quarantine`. A shard that cannot be read is tried
    READ_ATTEMPTS times (its partial output discarded each time), then quarantined with the reason."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return _ingest_once(tables, table, block, src, max_doc_bytes, batch, job, last=attempt == READ_ATTEMPTS)
        except _Retry:
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _ingest_once(tables, table, block, src, max_doc_bytes, batch, job, last: bool) -> dict:
    records, size, normalised = 0, 0, Counter()
    with (tables.part_writer(table, block, job.part, schemas.DOCUMENTS) as docs,
          tables.part_writer(f"{table}__quarantine", block, job.part, schemas.QUARANTINE) as quarantine):
        for result in iter_shard(src, job.shard, max_doc_bytes, batch):
            if not last and any(q["reason"] == UNREADABLE for q in result.quarantine):
                raise _Retry
            docs.write(schemas.frame(result.docs, schemas.DOCUMENTS))
            quarantine.write(schemas.frame(result.quarantine, schemas.QUARANTINE))
            records += result.records
            size += sum(len(d["text"].encode("utf-8", "surrogatepass")) for d in result.docs)
            normalised.update(result.normalised)
        failpoint("ingest")
    return {"rows_in": records, "rows_out": docs.rows, "quarantined": quarantine.rows, "bytes": size,
            "normalised": dict(normalised)}


def clean_part(tables: TableStore, source_table: str, table: str, block: str, profile: Profile, batch: int,
               job: PartJob) -> dict:
    """The D1 rules over one shard's documents, into `table`, `table__removed` and `table__quarantine`."""
    rows_in, bytes_in, bytes_out, edits, removed_by = 0, 0, 0, Counter(), Counter()
    with (tables.part_writer(table, block, job.part, schemas.CLEAN_DOCUMENTS) as kept,
          tables.part_writer(f"{table}__removed", block, job.part, schemas.REMOVED) as removed,
          tables.part_writer(f"{table}__quarantine", block, job.part, schemas.QUARANTINE) as quarantine):
        for frame in iter_part(tables, source_table, block, job.part, batch=batch):
            result = clean_frame(frame, profile, job.source, log=lambda _: None)
            kept.write(result.kept)
            removed.write(result.removed)
            quarantine.write(result.quarantine)
            rows_in += frame.height
            bytes_in += int(frame["text"].str.len_bytes().sum() or 0)
            bytes_out += int(result.kept["text"].str.len_bytes().sum() or 0)
            edits.update(result.edit_counts)
            removed_by.update(result.removed["reason"].to_list())
        failpoint("clean")
    return {"rows_in": rows_in, "rows_out": kept.rows, "quarantined": quarantine.rows, "removed": dict(removed_by),
            "edits": dict(edits), "bytes_in": bytes_in, "bytes_out": bytes_out}


def sign_part(tables: TableStore, source_table: str, table: str, block: str, params: MinHashParams, batch: int,
              job: PartJob) -> dict:
    """MinHash signatures of one shard's clean documents (no text), ordered for the keep rule."""
    seeds = _permutation_seeds(params)
    with tables.part_writer(table, block, job.part, SIGNATURES) as out:
        for frame in iter_part(tables, source_table, block, job.part, ["doc_id", "source", "shard", "row", "text"], batch):
            rows = signature_rows(frame["text"].to_list(), params, seeds)
            out.write(frame.select(
                pl.Series("ord", [ingest_order(job.seq, job.index, r) for r in frame["row"]], dtype=pl.Int64),
                pl.lit(block).alias("block"), "source", "shard", "row", "doc_id",
            ).with_columns(pl.DataFrame(rows, schema={k: SIGNATURES[k] for k in rows})))
    return {"rows_in": out.rows, "rows_out": out.rows}


def dedup_part(tables: TableStore, source_table: str, table: str, block: str, decisions: pl.DataFrame, batch: int,
               job: PartJob) -> dict:
    """One shard's clean documents minus the corpus-wide decisions about them (an anti-join on row)."""
    mine = decisions.filter(pl.col("shard") == job.shard).drop("doc_id", "block", "source", "shard")
    removed_by: Counter[str] = Counter()
    rows_in = 0
    with (tables.part_writer(table, block, job.part, schemas.CLEAN_DOCUMENTS) as kept,
          tables.part_writer(f"{table}__removed", block, job.part, schemas.DUPLICATES) as removed):
        for frame in iter_part(tables, source_table, block, job.part, batch=batch):
            rows_in += frame.height
            gone = frame.join(mine, on="row", how="inner").with_columns(
                pl.format("{} of {}/{}#{}", "reason", "kept_source", "kept_shard", "kept_row").alias("detail"))
            kept.write(frame.join(mine, on="row", how="anti"))
            removed.write(gone)
            removed_by.update(gone["reason"].to_list())
    return {"rows_in": rows_in, "rows_out": kept.rows, "removed": dict(removed_by)}


def decontaminate_part(tables: TableStore, source_table: str, table: str, block: str, index, rule, batch: int,
                       job: PartJob) -> dict:
    """One shard's documents against the benchmark index: kept, `table__removed` and every hit in `table__hits`."""
    from hare_assets.lib.contamination import HITS, decontaminate

    rows_in, removed_by, with_hits, excised = 0, Counter(), 0, 0
    with (tables.part_writer(table, block, job.part, schemas.CLEAN_DOCUMENTS) as kept,
          tables.part_writer(f"{table}__removed", block, job.part, schemas.REMOVED) as removed,
          tables.part_writer(f"{table}__hits", block, job.part, HITS) as hits):
        for frame in iter_part(tables, source_table, block, job.part, batch=batch):
            result = decontaminate(frame, index, rule, "d1")
            kept.write(result.kept)
            removed.write(result.removed)
            hits.write(result.hits)
            rows_in += frame.height
            removed_by.update(result.removed["reason"].to_list())
            with_hits += result.hits["doc_id"].n_unique()
            excised += result.hits.filter(pl.col("action") == "excised")["doc_id"].n_unique()
        failpoint("decontaminate_d1")
    return {"rows_in": rows_in, "rows_out": kept.rows, "removed": dict(removed_by), "documents_with_hits": with_hits,
            "documents_excised": excised}


def embed_part(tables: TableStore, source_table: str, table: str, block: str, embed: Callable[[list[str]], np.ndarray],
               model_id: str, batch: int, job: PartJob) -> dict:
    """One shard's documents embedded batch by batch. Vectors the shard's previous part file holds for the same
    doc_id and model are reused (a shard redone because one of its documents went is not embedded again)."""
    cached: dict[str, list[float]] = {}
    if tables.fs.exists(tables.part_path(table, block, job.part)):
        for frame in iter_part(tables, table, block, job.part, batch=batch):
            mine = frame.filter(pl.col("model") == model_id)
            cached.update(zip(mine["doc_id"].to_list(), mine["embedding"].to_list(), strict=True))
    rows_in = embedded = 0
    with tables.part_writer(table, block, job.part, schemas.EMBEDDINGS) as out:
        for frame in iter_part(tables, source_table, block, job.part, columns=["doc_id", "text"], batch=batch):
            rows_in += frame.height
            vectors = [cached.get(d) for d in frame["doc_id"].to_list()]
            todo = [i for i, v in enumerate(vectors) if v is None]
            if todo:
                for i, vector in zip(todo, embed(frame["text"].gather(todo).to_list()).tolist(), strict=True):
                    vectors[i] = vector
            embedded += len(todo)
            out.write(pl.DataFrame({"doc_id": frame["doc_id"], "model": model_id,
                                    "embedding": pl.Series(vectors, dtype=pl.List(pl.Float32))}))
    return {"rows_in": rows_in, "rows_out": out.rows, "embedded": embedded, "cache_hits": rows_in - embedded}


def tokenize_part(tables: TableStore, source_table: str, table: str, block: str, tokenizer: str | None, batch: int,
                  job: PartJob) -> dict:
    """One shard's documents tokenized once, for every mixture and pack built from them later."""
    from hare_assets.lib.tokenizer import encoder

    enc = encoder(tokenizer)
    rows_in = tokens = 0
    with tables.part_writer(table, block, job.part, schemas.TOKENS) as out:
        for frame in iter_part(tables, source_table, block, job.part, columns=["doc_id", "text"], batch=batch):
            ids = enc.encode(frame["text"].to_list(), num_threads=1)  # one thread per shard: the pool uses the cores
            counts = [len(i) + 2 for i in ids]
            out.write(pl.DataFrame({"doc_id": frame["doc_id"], "tokens": counts, "ids": pl.Series(ids, dtype=pl.List(pl.UInt32))}))
            rows_in += frame.height
            tokens += sum(counts)
    return {"rows_in": rows_in, "rows_out": out.rows, "tokens": tokens}

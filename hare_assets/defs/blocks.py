"""The D1 stages' shared step: run a lib/blocks stage over one block, commit it, and say what it did."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import dagster as dg
import polars as pl

from hare_assets.lib.blocks import BlockRun, PartJob, run_block, stage_fingerprint
from hare_assets.lib.shard_pools import ShardPool
from hare_assets.lib.shards import block_shards, safe_name
from hare_assets.lib.storage import TableStore

MANIFEST = "shard_manifest"


def module_fingerprint(*modules: ModuleType) -> str:
    """The code a stage runs: a change in it redoes the stage's shards; other code changes do not."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def manifest_rows(tables: TableStore, block: str) -> pl.DataFrame:
    """The block's present shards; fails in one line when the manifest does not know the block."""
    if not tables.exists(MANIFEST):
        raise dg.Failure(f"{MANIFEST} is not materialized; materialize it first (it registers the block partitions)")
    manifest = tables.read(MANIFEST)
    if not manifest.filter(pl.col("block") == block).height:
        raise dg.Failure(f"block {block!r} is not in {MANIFEST}; rematerialize {MANIFEST}")
    return block_shards(manifest, block)


def block_jobs(tables: TableStore, block: str, upstream: str | None, settings: object) -> list[PartJob]:
    """A job per shard of the block. Its fingerprint chains the upstream receipt (or the shard's content
    fingerprint) with the stage's settings, so a change anywhere above redoes exactly the affected shards."""
    jobs = []
    for i, r in enumerate(manifest_rows(tables, block).iter_rows(named=True)):
        part = safe_name(r["shard"])
        if upstream is None:
            basis = r["fingerprint"]
        else:
            receipt = tables.receipt(upstream, block, part)
            if receipt is None or tables.committed(upstream, block) is None:
                raise dg.Failure(f"{upstream}[{block}] is not materialized (shard {r['shard']}); materialize it first")
            basis = receipt["fingerprint"]
        jobs.append(PartJob(part, r["shard"], r["source"], r["bytes"], stage_fingerprint(basis, settings), r["seq"], i))
    return jobs


def run_stage(context: dg.AssetExecutionContext, tables: TableStore, table: str, companions: list[str],
              jobs: list[PartJob], work: Callable[[PartJob], dict], pool: ShardPool, block: str | None = None) -> BlockRun:
    """Every shard of the block (default: the run's partition) through `work` in `pool`, then the block committed:
    companions first, `table` last."""
    block = block or context.partition_key
    run = run_block(tables, table, block, jobs, work, pool, log=context.log.info)
    parts = [j.part for j in jobs]
    for companion in companions:
        tables.commit(companion, block, parts)
    tables.commit(table, block, parts, {"fingerprints": {j.part: j.fingerprint for j in jobs}})
    return run


def shard_metadata(run: BlockRun) -> dict[str, dg.MetadataValue]:
    return {
        "shards": dg.MetadataValue.int(len(run.receipts)),
        "shards_read": dg.MetadataValue.int(len(run.read)),
        "shards_skipped": dg.MetadataValue.int(len(run.skipped)),
        "engine": dg.MetadataValue.text(run.where),
    }

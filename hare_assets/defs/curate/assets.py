"""curate: HARE D1 heuristics per block, MinHash signatures per block, one corpus-wide duplicate decision on
the signatures, and each block's documents minus its duplicates."""

import hashlib
import json
import time
from functools import partial

import dagster as dg
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.blocks import block_jobs, module_fingerprint, run_stage, shard_metadata
from hare_assets.defs.ingest.assets import RAW
from hare_assets.defs.ingest.partitions import BLOCKS
from hare_assets.defs.metadata import count_table, frame_markdown, reason_table
from hare_assets.defs.resources import HareStorage, ShardEngine
from hare_assets.lib import curation, dedup, text_rules
from hare_assets.lib.accounting import Account
from hare_assets.lib.blocks import WORKER_PRELOAD, clean_part, dedup_part, sign_part
from hare_assets.lib.dedup import MinHashParams
from hare_assets.lib.dedup_engine import DuckDBLimits, decide
from hare_assets.lib.failpoints import failpoint
from hare_assets.lib.profile import Profile, SourceConfig
from hare_assets.lib.shards import block_source

CLEAN = "clean_documents"
SIGNATURES = "minhash_signatures"
DECISIONS = "duplicate_decisions"
DEDUP = "deduplicated_documents"


def _version(*parts: object) -> str:
    """Code version from the settings that shape an asset, so the UI marks it stale when they change."""
    def dump(obj):  # where a source's files live does not change what the rules do
        return obj.model_dump(mode="json", exclude={"path"} if isinstance(obj, SourceConfig) else None)

    blob = json.dumps(parts, default=dump, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_curate_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    ingest = profile.ingest
    clean_settings = (module_fingerprint(text_rules, curation), _version(profile.clean, profile.sources))

    @dg.asset(
        name=CLEAN,
        partitions_def=BLOCKS,
        deps=[RAW],
        group_name="curate",
        kinds={"parquet", "polars"},
        code_version=clean_settings[1],
        check_specs=[accounting_spec(CLEAN)],
        description=(
            "HARE D1 heuristics on one block: boilerplate markers, detokenisation, personal information masked or "
            "dropped, links stripped, incomplete and non-English samples removed, Gopher/C4 quality rules. Removed rows "
            f"stay in `{CLEAN}__removed` with their reason. Streams each shard in batches; a rerun skips finished shards."
        ),
    )
    def clean_documents(context: dg.AssetExecutionContext, storage: HareStorage, engine: ShardEngine):
        tables, block = storage.tables, context.partition_key
        jobs = block_jobs(tables, block, RAW, clean_settings)
        started = time.perf_counter()
        work = partial(clean_part, tables, RAW, CLEAN, block, profile, ingest.batch_records)
        run = run_stage(context, tables, CLEAN, [f"{CLEAN}__removed", f"{CLEAN}__quarantine"], jobs, work,
                        engine.pool(ingest.processes, WORKER_PRELOAD))
        seconds = time.perf_counter() - started
        removed = tables.read(f"{CLEAN}__removed", block, columns=["source", "shard", "row", "reason", "detail"])
        account = Account(
            rows_in=tables.num_rows(RAW, block),
            rows_out=tables.num_rows(CLEAN, block),
            removed=Account.count(removed["reason"].to_list()) if removed.height else {},
            quarantined=tables.num_rows(f"{CLEAN}__quarantine", block),
        )
        done_bytes = sum(run.receipts[p]["bytes_in"] for p in run.receipts if run.receipts[p]["shard"] in run.read)
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                **shard_metadata(run),
                "removed_by_rule": reason_table(removed),
                "edits": count_table(run.counts("edits"), "edit"),
                "bytes_in": dg.MetadataValue.int(run.total("bytes_in")),
                "bytes_out": dg.MetadataValue.int(run.total("bytes_out")),
                "throughput_mb_s": dg.MetadataValue.float(round(done_bytes / 1e6 / max(seconds, 1e-9), 3)),
                "path": dg.MetadataValue.path(tables.url(CLEAN, block)),
            },
            check_results=[accounting_result(CLEAN, account)],
        )

    params = MinHashParams.from_profile(profile.dedup)
    sign_settings = (module_fingerprint(dedup), params.ngram, params.num_perm, params.bands, params.rows, params.seed)

    @dg.asset(
        name=SIGNATURES,
        partitions_def=BLOCKS,
        deps=[CLEAN],
        group_name="curate",
        kinds={"parquet"},
        code_version=_version(sign_settings[1:]),
        description=(
            "MinHash signatures of one block's clean documents (doc id, ingestion order, exact-match key, shingle count, "
            "one 64-bit key per band; no text): all the corpus-wide duplicate decision reads besides the candidates' text."
        ),
    )
    def minhash_signatures(context: dg.AssetExecutionContext, storage: HareStorage, engine: ShardEngine):
        tables, block = storage.tables, context.partition_key
        jobs = block_jobs(tables, block, CLEAN, sign_settings)
        run = run_stage(context, tables, SIGNATURES, [], jobs, partial(sign_part, tables, CLEAN, SIGNATURES, block, params,
                                                                          ingest.batch_records),
                        engine.pool(ingest.processes, WORKER_PRELOAD))
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(tables.num_rows(SIGNATURES, block)),
            **shard_metadata(run),
            "path": dg.MetadataValue.path(tables.url(SIGNATURES, block)),
        })

    limits = DuckDBLimits(memory_limit=profile.dedup.memory_limit, threads=ingest.processes, temp_dir=profile.dedup.temp_dir)

    @dg.asset(
        name=DECISIONS,
        deps=[dg.AssetDep(SIGNATURES, partition_mapping=dg.AllPartitionMapping())],
        group_name="curate",
        kinds={"parquet", "duckdb"},
        code_version=_version(profile.dedup.model_dump(exclude={"memory_limit", "temp_dir"})),
        description=(
            "Which documents of the whole corpus are duplicates, and of which kept document: exact (normalised text) "
            "then MinHash-LSH with exact-Jaccard verification, decided by DuckDB on the blocks' signatures under "
            "dedup.memory_limit (it spills to disk beyond it). Keep rule: first ingested wins (block order, then shard, "
            "then row): a document goes only when it duplicates an earlier document that stays, so a new block never "
            "removes a document kept before."
        ),
    )
    def duplicate_decisions(context: dg.AssetExecutionContext, storage: HareStorage, engine: ShardEngine):
        tables = storage.tables
        blocks = sorted(set(context.instance.get_dynamic_partitions(BLOCKS.name)))
        missing = [b for b in blocks if tables.committed(SIGNATURES, b) is None]
        if missing:
            raise dg.Failure(f"{SIGNATURES} is not materialized for blocks {missing[:5]}{' …' if len(missing) > 5 else ''}; "
                             "materialize those partitions first (`hare demo` runs every partition)")
        started = time.perf_counter()
        pool = engine.pool(1)
        decisions, stats = pool.call(
            decide,
            [tables.location(f) for b in blocks for f in tables.files(SIGNATURES, b)],
            [tables.location(f) for b in blocks for f in tables.files(CLEAN, b)],
            params, profile.dedup.exact, limits, print if pool.remote else context.log.info,
            cpus=limits.threads,
        )
        seconds = time.perf_counter() - started
        failpoint("dedup")
        tables.write(DECISIONS, decisions)
        per_block = decisions.group_by("block").agg(pl.len().alias("removed")).sort("block")
        per_source = _per_source(tables, blocks, decisions)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(decisions.height),
            "documents": dg.MetadataValue.int(stats.documents),
            "exact_duplicates": dg.MetadataValue.int(stats.exact),
            "near_duplicates": dg.MetadataValue.int(stats.near),
            "candidate_pairs": dg.MetadataValue.int(stats.candidate_pairs),
            "verified_pairs": dg.MetadataValue.int(stats.verified_pairs),
            "clusters": dg.MetadataValue.int(decisions["kept_doc_id"].n_unique()),
            "per_block": frame_markdown(per_block),
            "per_source": frame_markdown(per_source),
            "minhash": dg.MetadataValue.json(
                {"ngram": params.ngram, "num_perm": params.num_perm, "bands": params.bands, "rows": params.rows,
                 "threshold": params.threshold, "verify": params.verify, "seed": params.seed,
                 "memory_limit": limits.memory_limit}),
            "throughput_docs_s": dg.MetadataValue.float(round(stats.documents / max(seconds, 1e-9), 1)),
            "engine": dg.MetadataValue.text(pool.where([])),
            "path": dg.MetadataValue.path(tables.url(DECISIONS)),
        })

    @dg.asset(
        name=DEDUP,
        partitions_def=BLOCKS,
        deps=[CLEAN, DECISIONS],
        group_name="curate",
        kinds={"parquet", "polars"},
        check_specs=[accounting_spec(DEDUP)],
        description=(
            f"One block's clean documents minus the duplicates `{DECISIONS}` names (an anti-join, shard by shard). "
            f"`{DEDUP}__removed` keeps each removed row with the document it duplicates (kept_doc_id, kept_source/shard/row) "
            "and their Jaccard similarity. A block whose decisions did not change is left as it is."
        ),
    )
    def deduplicated_documents(context: dg.AssetExecutionContext, storage: HareStorage, engine: ShardEngine):
        tables, block = storage.tables, context.partition_key
        if not tables.exists(DECISIONS):
            raise dg.Failure(f"{DECISIONS} is not materialized; materialize it first")
        decisions = tables.read(DECISIONS, filters=[("block", "=", block)])  # sorted by block: its row groups only
        settings = hashlib.sha256(decisions.sort("shard", "row").write_ipc(None).getvalue()).hexdigest()[:16]
        jobs = block_jobs(tables, block, CLEAN, settings)
        work = partial(dedup_part, tables, CLEAN, DEDUP, block, decisions, ingest.batch_records)
        run = run_stage(context, tables, DEDUP, [f"{DEDUP}__removed"], jobs, work, engine.pool(1))
        removed = tables.read(f"{DEDUP}__removed", block, columns=["source", "shard", "row", "reason", "detail"])
        account = Account(rows_in=tables.num_rows(CLEAN, block), rows_out=tables.num_rows(DEDUP, block),
                          removed=Account.count(removed["reason"].to_list()) if removed.height else {})
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                **shard_metadata(run),
                "removed_by_reason": reason_table(removed),
                "path": dg.MetadataValue.path(tables.url(DEDUP, block)),
            },
            check_results=[accounting_result(DEDUP, account)],
        )

    return [clean_documents, minhash_signatures, duplicate_decisions, deduplicated_documents]


def _per_source(tables, blocks: list[str], decisions: pl.DataFrame) -> pl.DataFrame:
    """D1 accounting summed over each source's blocks (from the stored tables' row counts)."""
    rows = [{"source": block_source(b), "blocks": 1, "raw": tables.num_rows(RAW, b),
             "quarantined": tables.num_rows(f"{RAW}__quarantine", b) + tables.num_rows(f"{CLEAN}__quarantine", b),
             "cleaned_away": tables.num_rows(f"{CLEAN}__removed", b), "clean": tables.num_rows(CLEAN, b)} for b in blocks]
    duplicates = decisions.group_by("source").agg(pl.len().alias("duplicates"))
    frame = pl.DataFrame(rows, schema={"source": pl.String, "blocks": pl.Int64, "raw": pl.Int64, "quarantined": pl.Int64,
                                       "cleaned_away": pl.Int64, "clean": pl.Int64})
    return (frame.group_by("source").sum().join(duplicates, on="source", how="left").fill_null(0)
            .with_columns((pl.col("clean") - pl.col("duplicates")).alias("kept")).sort("source"))

"""integrity: benchmark sets, their n-gram index, decontamination of D1/D2/D3, and where hits came from.

HARE's third principle is "no benchmark leakage": every dataset that can reach a training
mixture passes through a `decontaminated_*` asset, whose blocking check re-scans what it kept.
"""

import os
import time
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

import dagster as dg
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.blocks import block_jobs, run_stage, shard_metadata
from hare_assets.defs.curate.assets import DEDUP
from hare_assets.defs.curate.partitions import TOPICS
from hare_assets.defs.curate.topics import ASSIGNMENTS, CLUSTERS
from hare_assets.defs.ingest.partitions import BLOCKS
from hare_assets.defs.metadata import frame_markdown, reason_table
from hare_assets.defs.ranges import backfill_policy, each_partition
from hare_assets.defs.resources import HareStorage, ShardEngine
from hare_assets.defs.synthesize.assets import SYNTHETIC, TASKS
from hare_assets.lib.accounting import Account
from hare_assets.lib.benchmarks import BENCHMARKS_DIR_ENV, items_frame, items_from_frame, load_items, load_registry
from hare_assets.lib.blocks import decontaminate_part, iter_part
from hare_assets.lib.contamination import HITS as HIT_SCHEMA
from hare_assets.lib.contamination import (
    REASON,
    contamination_matrix,
    decontaminate,
    index_sizes,
    root_documents,
    rule_for,
)
from hare_assets.lib.decontam import DecontamRule, NgramIndex, scan_batch
from hare_assets.lib.failpoints import failpoint
from hare_assets.lib.profile import Profile
from hare_assets.lib.storage import TableStore

BENCHMARK_SETS = "benchmark_sets"
INDEX = "benchmark_ngram_index"
INDEX_ITEMS = f"{INDEX}__items"
DECONTAMINATED = {"d1": "decontaminated_documents", "d2": "decontaminated_synthetic", "d3": "decontaminated_tasks"}
UPSTREAM = {"d1": DEDUP, "d2": SYNTHETIC, "d3": TASKS}
HITS = "contamination_hits"
CHECK = "contamination_below_threshold"


def benchmarks_dir(profile: Profile) -> Path | None:
    """HARE_BENCHMARKS_DIR, else the profile's integrity.benchmarks_dir, else None (the HF hub)."""
    value = os.environ.get(BENCHMARKS_DIR_ENV) or profile.integrity.benchmarks_dir
    return Path(value).expanduser().resolve() if value else None


def load_index(tables: TableStore, n: int) -> NgramIndex:
    if not tables.exists(INDEX, f"n{n}"):
        raise dg.Failure(f"{INDEX} holds no n={n} index; rematerialize {INDEX} (the profile's rules changed?)")
    return NgramIndex.from_tables(tables.read(INDEX, f"n{n}"), tables.read(INDEX_ITEMS), n)


def _contamination_check(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK, asset=asset, blocking=True,
        description="Re-scans every kept row against the benchmark index: none may reach the removal rule, "
                    "so no training mixture can be built from contaminated data.",
    )


def build_integrity_assets(profile: Profile, benchmarks: dg.PartitionsDefinition,
                           tasks: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    integrity = profile.integrity
    registry = load_registry()
    sizes = index_sizes(integrity)

    @dg.asset(
        name=BENCHMARK_SETS,
        partitions_def=benchmarks,
        group_name="integrity",
        kinds={"parquet", "polars"},
        description=(
            "Every split of one benchmark, normalised: item ids, question, context, choices, answer, and the "
            "texts ('views') the n-gram index sees. From package data (demo_mc), a local folder laid out like "
            f"../shared/data/benchmarks (${BENCHMARKS_DIR_ENV} or integrity.benchmarks_dir), or the HF hub."
        ),
    )
    def benchmark_sets(context: dg.AssetExecutionContext, storage: HareStorage):
        spec = registry[context.partition_key]
        local = benchmarks_dir(profile) if spec.builtin is None else None
        items = load_items(spec, local)
        frame = items_frame(items)
        storage.tables.write(BENCHMARK_SETS, frame, spec.name)
        splits = frame.group_by("split").agg(pl.len().alias("items"), pl.col("views").list.len().sum().alias("views")).sort("split")
        missing = spec.missing_local_splits() if local else []
        origin = "package data" if spec.builtin else (str(local) if local else f"hub: {spec.hf.id if spec.hf else '?'}")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "origin": dg.MetadataValue.text(origin),
            "splits": frame_markdown(splits),
            "missing_splits": dg.MetadataValue.text(
                ", ".join(missing) + " (not in the local folder: not decontaminated against)" if missing else "none"),
            "lm_eval_task": dg.MetadataValue.text(f"{spec.lm_eval_task} ({spec.num_fewshot}-shot)"),
        })

    @dg.asset(
        name=INDEX,
        deps=[dg.AssetDep(BENCHMARK_SETS, partition_mapping=dg.AllPartitionMapping())],
        group_name="integrity",
        kinds={"parquet", "numpy"},
        code_version=f"n={sizes}",
        description=(
            "Hashed word n-grams of every view of every benchmark item (one index per n the rules use), with the "
            "items holding each n-gram. Scans verify every hash hit word for word: no false positives."
        ),
    )
    def benchmark_ngram_index(context: dg.AssetExecutionContext, storage: HareStorage):
        tables = storage.tables
        missing = [b for b in integrity.benchmarks if not tables.exists(BENCHMARK_SETS, b)]
        if missing:
            raise dg.Failure(f"{BENCHMARK_SETS} is not materialized for {missing}; materialize those partitions first")
        items = items_from_frame(pl.concat([tables.read(BENCHMARK_SETS, b) for b in integrity.benchmarks]))
        stats = {}
        for i, n in enumerate(sizes):
            started = time.perf_counter()
            index = NgramIndex.build(items, n)
            postings, item_table = index.to_tables()
            tables.write(INDEX, pl.from_arrow(postings), f"n{n}")
            if i == 0:
                tables.write(INDEX_ITEMS, pl.from_arrow(item_table))
            stats[f"n{n}"] = {**index.stats(), "seconds": round(time.perf_counter() - started, 2)}
            context.log.info(f"n={n}: {len(index):,} n-grams over {len(items):,} items")
        for stale in set(tables.partitions(INDEX)) - {f"n{n}" for n in sizes}:
            tables.delete(INDEX, stale)
        return dg.MaterializeResult(metadata={
            "items": dg.MetadataValue.int(len(items)),
            "n": dg.MetadataValue.text(", ".join(map(str, sizes))),
            "index": dg.MetadataValue.json(stats),
        })

    def decontaminate_partition(tables: TableStore, dataset: str, partition: str | None) -> dg.MaterializeResult:
        asset, upstream = DECONTAMINATED[dataset], UPSTREAM[dataset]
        rule = rule_for(integrity, dataset)
        if not tables.exists(upstream, partition):
            raise dg.Failure(f"{upstream}[{partition}] is not materialized; materialize it first")
        frame = tables.read(upstream, partition)
        index = load_index(tables, rule.n)
        started = time.perf_counter()
        result = decontaminate(frame, index, rule, dataset)
        seconds = time.perf_counter() - started
        tables.write(f"{asset}__hits", result.hits, partition)
        tables.write(f"{asset}__removed", result.removed, partition)
        failpoint(f"decontaminate_{dataset}")
        tables.write(asset, result.kept, partition)
        removed = tables.read(f"{asset}__removed", partition, columns=["reason"])
        account = Account(rows_in=frame.height, rows_out=tables.num_rows(asset, partition),
                          removed=Account.count(removed["reason"].to_list()))
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                "rule": dg.MetadataValue.text(_describe(rule, integrity.strict)),
                "documents_with_hits": dg.MetadataValue.int(result.hits["doc_id"].n_unique()),
                "documents_excised": dg.MetadataValue.int(result.hits.filter(pl.col("action") == "excised")["doc_id"].n_unique()),
                "removed": reason_table(result.removed),
                "contamination": frame_markdown(contamination_matrix(result.hits)) if result.hits.height else dg.MetadataValue.md("no hits"),
                "throughput_mb_s": dg.MetadataValue.float(round(frame["text"].str.len_bytes().sum() / 1e6 / max(seconds, 1e-9), 2)),
                "path": dg.MetadataValue.path(tables.url(asset, partition)),
            },
            check_results=[
                accounting_result(asset, account),
                _recheck(asset, [tables.read(asset, partition)], index, rule),
            ],
        )

    common = dict(group_name="integrity", kinds={"parquet", "numpy"})

    d1_rule = rule_for(integrity, "d1")

    @dg.asset(
        name=DECONTAMINATED["d1"],
        partitions_def=BLOCKS,
        deps=[DEDUP, INDEX],
        check_specs=[accounting_spec(DECONTAMINATED["d1"]), _contamination_check(DECONTAMINATED["d1"])],
        code_version=_describe(d1_rule, integrity.strict),
        description=(f"One block of D1 without benchmark leakage: `{DEDUP}` rows whose n-gram rate against the benchmarks "
                     f"reaches integrity.d1 are removed (`{REASON}`); rows that quote a benchmark item have the quoted stretch "
                     f"cut out (edit `benchmark_excised`); every hit is in `{DECONTAMINATED['d1']}__hits`. Streams each shard "
                     "in batches."),
        **common,
    )
    def decontaminated_documents(context: dg.AssetExecutionContext, storage: HareStorage, engine: ShardEngine):
        tables, block, asset = storage.tables, context.partition_key, DECONTAMINATED["d1"]
        index = load_index(tables, d1_rule.n)
        jobs = block_jobs(tables, block, DEDUP, (_describe(d1_rule, integrity.strict), index_fingerprint(tables)))
        started = time.perf_counter()
        work = partial(decontaminate_part, tables, DEDUP, asset, block, index, d1_rule, profile.ingest.batch_records)
        run = run_stage(context, tables, asset, [f"{asset}__removed", f"{asset}__hits"], jobs, work, engine.pool(1))
        seconds = time.perf_counter() - started
        removed = tables.read(f"{asset}__removed", block, columns=["source", "shard", "row", "reason", "detail"])
        account = Account(rows_in=tables.num_rows(DEDUP, block), rows_out=tables.num_rows(asset, block),
                          removed=Account.count(removed["reason"].to_list()) if removed.height else {})
        hits = tables.read(f"{asset}__hits", block)
        mb = sum(tables.fs.size(f) for f in tables.files(DEDUP, block)) / 1e6
        return dg.MaterializeResult(
            metadata={
                **account_metadata(account),
                **shard_metadata(run),
                "rule": dg.MetadataValue.text(_describe(d1_rule, integrity.strict)),
                "documents_with_hits": dg.MetadataValue.int(run.total("documents_with_hits")),
                "documents_excised": dg.MetadataValue.int(run.total("documents_excised")),
                "removed": reason_table(removed),
                "contamination": frame_markdown(contamination_matrix(hits)) if hits.height else dg.MetadataValue.md("no hits"),
                "throughput_mb_s": dg.MetadataValue.float(round(mb / max(seconds, 1e-9), 2)),
                "path": dg.MetadataValue.path(tables.url(asset, block)),
            },
            check_results=[
                accounting_result(asset, account),
                _recheck(asset, _batches(tables, asset, block), index, d1_rule),
            ],
        )

    @dg.asset(
        name=DECONTAMINATED["d2"],
        partitions_def=TOPICS,
        deps=[SYNTHETIC, INDEX],
        check_specs=[accounting_spec(DECONTAMINATED["d2"]), _contamination_check(DECONTAMINATED["d2"])],
        backfill_policy=backfill_policy(),
        code_version=_describe(rule_for(integrity, "d2"), integrity.strict),
        description=f"D2 of one topic without benchmark leakage (integrity.d2); hits in `{DECONTAMINATED['d2']}__hits`.",
        **common,
    )
    def decontaminated_synthetic(context: dg.AssetExecutionContext, storage: HareStorage):
        return each_partition(context, lambda key: decontaminate_partition(storage.tables, "d2", key))

    @dg.asset(
        name=DECONTAMINATED["d3"],
        partitions_def=tasks,
        deps=[TASKS, INDEX],
        check_specs=[accounting_spec(DECONTAMINATED["d3"]), _contamination_check(DECONTAMINATED["d3"])],
        backfill_policy=backfill_policy(),
        code_version=_describe(rule_for(integrity, "d3"), integrity.strict),
        description=(f"D3 of one task without benchmark leakage (integrity.d3: short task text, smaller n); hits in "
                     f"`{DECONTAMINATED['d3']}__hits`."),
        **common,
    )
    def decontaminated_tasks(context: dg.AssetExecutionContext, storage: HareStorage):
        return each_partition(context, lambda key: decontaminate_partition(storage.tables, "d3", key))

    @dg.asset(
        name=HITS,
        deps=[
            DECONTAMINATED["d1"],
            dg.AssetDep(DECONTAMINATED["d2"], partition_mapping=dg.AllPartitionMapping()),
            dg.AssetDep(DECONTAMINATED["d3"], partition_mapping=dg.AllPartitionMapping()),
            CLUSTERS,
        ],
        group_name="integrity",
        kinds={"parquet", "duckdb"},
        description=(
            "Every benchmark hit in D1, D2 and D3 with its provenance: doc_id, source, shard, row, topic, seed_doc_ids, "
            "benchmark, split, item_id, matched_ngrams, item_share, rate, action (removed, excised, kept), and `root_shards` — the D1 source shards the "
            "document descends from through its seeds. `hare sql \"SELECT * FROM contamination_hits\"`."
        ),
    )
    def contamination_hits(context: dg.AssetExecutionContext, storage: HareStorage):
        tables = storage.tables
        parts = [tables.read(f"{DECONTAMINATED['d1']}__hits")] if tables.exists(f"{DECONTAMINATED['d1']}__hits") else []
        topics = set(context.instance.get_dynamic_partitions(TOPICS.name))
        for dataset, keep in (("d2", topics), ("d3", set(tasks.get_partition_keys()))):
            table = f"{DECONTAMINATED[dataset]}__hits"
            parts += [tables.read(table, p) for p in tables.partitions(table) if p in keep]
        hits = pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=HIT_SCHEMA)
        if hits.is_empty():
            frame = _with_roots(hits, [])
        else:
            if tables.exists(ASSIGNMENTS):  # D1 documents: their topic cluster
                assigned = tables.read(ASSIGNMENTS, columns=["doc_id", "topic"]).rename({"topic": "assigned_topic"})
                hits = hits.join(assigned, on="doc_id", how="left").with_columns(
                    pl.coalesce("topic", "assigned_topic").alias("topic")).drop("assigned_topic")
            sources = [tables.read(DEDUP, columns=["doc_id", "source", "shard", "row"])]
            for dataset in ("d2", "d3"):
                table = UPSTREAM[dataset]
                sources += [tables.read(table, p, columns=["doc_id", "source", "shard", "row", "seed_doc_ids"])
                            for p in tables.partitions(table)]
            frame = _with_roots(hits, sources)
        tables.write(HITS, frame)
        matrix = contamination_matrix(frame)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "documents": dg.MetadataValue.int(frame.select("dataset", "doc_id").n_unique() if frame.height else 0),
            **{f"{action}_documents": dg.MetadataValue.int(frame.filter(pl.col("action") == action).select("dataset", "doc_id").n_unique())
               for action in ("removed", "excised")},
            "items": dg.MetadataValue.int(frame.select("benchmark", "item_id").n_unique() if frame.height else 0),
            "matrix": frame_markdown(matrix) if matrix.height else dg.MetadataValue.md("no hits"),
        })

    return [benchmark_sets, benchmark_ngram_index, decontaminated_documents, decontaminated_synthetic,
            decontaminated_tasks, contamination_hits]


def _with_roots(hits: pl.DataFrame, sources: list[pl.DataFrame]) -> pl.DataFrame:
    """Adds `root_shards`: "source/shard" of every D1 document the hit document descends from."""
    if hits.is_empty():
        return hits.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("root_shards"))
    roots = root_documents(hits["doc_id"].unique().to_list(), sources)
    shards = (roots.with_columns(pl.concat_str("root_source", pl.lit("/"), "root_shard").alias("root"))
              .group_by("doc_id").agg(pl.col("root").unique().sort().alias("root_shards")))
    return hits.join(shards, on="doc_id", how="left")


def _describe(rule: DecontamRule, strict: bool) -> str:
    if rule.rate == "strict":
        return f"strict: any verified {rule.n}-gram hit removes" + (" (integrity.strict)" if strict else "")
    text = f"{rule.rate} >= {rule.threshold} at n={rule.n}" + (f", bridge {rule.bridge}" if rule.bridge is not None else "")
    return text + (f"; or >= {rule.min_item_share:.0%} of one item" if rule.min_item_share is not None else "")


def _batches(tables: TableStore, table: str, block: str) -> Iterator[pl.DataFrame]:
    for job_part in (tables.committed(table, block) or {"parts": []})["parts"]:
        yield from iter_part(tables, table, block, job_part, ["doc_id", "source", "shard", "row", "text"])


def index_fingerprint(tables: TableStore) -> str:
    """What the stored benchmark index holds: a rebuilt index redoes the D1 blocks."""
    return ",".join(f"{tables.fs.size(f)}" for f in tables.files(INDEX_ITEMS))


def _recheck(asset: str, kept: Iterable[pl.DataFrame], index: NgramIndex, rule: DecontamRule) -> dg.AssetCheckResult:
    """The blocking check: scan what was written, independently of the removal pass (batch by batch)."""
    scanned, bad = 0, []
    for frame in kept:
        scanned += frame.height
        flagged = frame.filter(pl.Series(scan_batch(frame["text"].to_list(), index, rule).contaminated, dtype=pl.Boolean))
        bad.append(flagged.select("doc_id", "source", "shard", "row"))
    bad_rows = pl.concat(bad) if bad else pl.DataFrame()
    return dg.AssetCheckResult(
        asset_key=asset, check_name=CHECK, passed=bad_rows.is_empty(), severity=dg.AssetCheckSeverity.ERROR,
        description=f"{bad_rows.height} kept rows reach the rule" if bad_rows.height else "no kept row reaches the rule",
        metadata={"rows_scanned": scanned, "rows_over_threshold": bad_rows.height,
                  "examples": dg.MetadataValue.json(bad_rows.head(5).to_dicts())},
    )

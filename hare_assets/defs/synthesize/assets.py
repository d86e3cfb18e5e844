"""synthesize: HARE D2 (per-topic synthetic documents) and D3 (task text), through the generator resource."""

import time

import dagster as dg
import polars as pl

from hare_assets.defs.accounting import account_metadata, accounting_result, accounting_spec
from hare_assets.defs.curate.partitions import TOPICS
from hare_assets.defs.metadata import reason_table
from hare_assets.defs.ranges import backfill_policy, combined
from hare_assets.defs.resources import GeneratorResource, HareStorage
from hare_assets.lib.accounting import Account
from hare_assets.lib.profile import OpenTaskConfig, Profile
from hare_assets.lib.readers import list_shards, read_shard
from hare_assets.lib.synthesis import Built, open_task_rows, restruct_requests, restruct_rows, topic_requests, topic_rows
from hare_assets.lib.tasks import render_open_task

SYNTHETIC = "synthetic_documents"
TASKS = "task_documents"
TOPIC_DOCUMENTS = "topic_documents"
TOPIC_CLUSTERS = "topic_clusters"


def write_built(context: dg.AssetExecutionContext, tables, asset: str, partition: str, built: Built, rows_in: int,
                extra: dict) -> dg.MaterializeResult:
    """Write kept/removed/quarantined rows atomically and account for every input row."""
    kept, removed, quarantine = built.frames()
    tables.write(f"{asset}__quarantine", quarantine, partition)
    tables.write(f"{asset}__removed", removed, partition)
    tables.write(asset, kept, partition)
    account = Account(
        rows_in=rows_in,
        rows_out=tables.num_rows(asset, partition),
        removed=Account.count(tables.read(f"{asset}__removed", partition, columns=["reason"])["reason"].to_list()),
        quarantined=tables.num_rows(f"{asset}__quarantine", partition),
    )
    return dg.MaterializeResult(
        metadata={
            **account_metadata(account),
            "removed": reason_table(removed),
            "quarantine": reason_table(quarantine),
            "preview": dg.MetadataValue.md("\n\n---\n\n".join(t[:600] for t in kept["text"].head(2).to_list()) or "(none)"),
            "path": dg.MetadataValue.path(tables.url(asset, partition)),
            **extra,
        },
        check_results=[accounting_result(asset, account)],
    )


def _generation_metadata(generator, seconds: float) -> dict:
    stats = generator.stats.as_dict()
    return {
        "generator": dg.MetadataValue.text(f"{generator.backend.kind}:{generator.backend.model}"),
        "generation": dg.MetadataValue.json(stats),
        "cache_hits": dg.MetadataValue.int(int(stats["cache_hits"])),
        "completion_tokens": dg.MetadataValue.int(int(stats["completion_tokens"])),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
    }


def _generate_together(context: dg.AssetExecutionContext, generator: GeneratorResource, requests: dict[str, list]):
    """One generation call for the requests of every partition in the run (bigger batches), split back per partition."""
    gen = generator.generator(context.log.info)
    started = time.perf_counter()
    results = iter(gen.generate([r for batch in requests.values() for r in batch]))
    replies = {key: [next(results) for _ in batch] for key, batch in requests.items()}
    return gen, replies, _generation_metadata(gen, time.perf_counter() - started)


def _with_metadata(result: dg.MaterializeResult, extra: dict) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={**(result.metadata or {}), **extra}, check_results=result.check_results)


def _open_task_records(task: OpenTaskConfig) -> tuple[list[dict], list[dict]]:
    docs, quarantine = [], []
    source = task.reader_source
    for shard in list_shards(source):
        result = read_shard(source, shard, 1_000_000)
        docs.extend(result.docs)
        quarantine.extend(result.quarantine)
    if task.max_rows is not None:
        docs = docs[: task.max_rows]
    return docs, quarantine


def build_synthesize_assets(profile: Profile, tasks: dg.PartitionsDefinition, gpu: bool) -> list[dg.AssetsDefinition]:
    pool = "gpu" if gpu else None

    @dg.asset(
        name=SYNTHETIC,
        partitions_def=TOPICS,
        deps=[TOPIC_DOCUMENTS],
        group_name="synthesize",
        kinds={"parquet", "llm"},
        pool=pool,
        check_specs=[accounting_spec(SYNTHETIC)],
        backfill_policy=backfill_policy(),
        description=(
            "HARE D2 for one topic: seed documents sampled from the topic, Cosmopedia-style prompts "
            "(resources/prompts/d2) chosen per seed source, one generator for everything; outputs pass the D1 "
            "quality rules and a token-length cap. Rows carry topic, seed_doc_ids, generator and prompt_version."
        ),
    )
    def synthetic_documents(context: dg.AssetExecutionContext, storage: HareStorage, generator: GeneratorResource):
        tables = storage.tables
        clusters = tables.read(TOPIC_CLUSTERS)
        keywords, rows_in, requests = {}, {}, {}
        for topic in context.partition_keys:
            docs = tables.read(TOPIC_DOCUMENTS, topic)
            found = clusters.filter(pl.col("topic") == topic)["keywords"].to_list()
            keywords[topic] = found[0] if found else []
            rows_in[topic] = min(len(docs), profile.synthesis.seeds_per_topic)
            requests[topic] = topic_requests(topic, keywords[topic], docs, profile)
        gen, replies, generation = _generate_together(context, generator, requests)
        written = {topic: write_built(context, tables, SYNTHETIC, topic,
                                      topic_rows(topic, requests[topic], replies[topic], profile, gen.backend.model), rows_in[topic],
                                      {"keywords": dg.MetadataValue.text(", ".join(keywords[topic]))})
                   for topic in requests}
        return _with_metadata(combined(written), generation)

    @dg.asset(
        name=TASKS,
        partitions_def=tasks,
        deps=[dg.AssetDep(SYNTHETIC, partition_mapping=dg.AllPartitionMapping())],
        group_name="synthesize",
        kinds={"parquet", "llm"},
        pool=pool,
        check_specs=[accounting_spec(TASKS)],
        backfill_policy=backfill_policy(),
        description=(
            "HARE D3 for one task: Restruct items (qa, mcq, cloze, summary) generated from D2 seeds as JSON, "
            "validated (malformed JSON, answers not among the options are rejected and counted) and rendered as "
            "text; or an open task set from the profile turned into text by a template. At most tasks.max_tokens tokens."
        ),
    )
    def task_documents(context: dg.AssetExecutionContext, storage: HareStorage, generator: GeneratorResource):
        tables = storage.tables
        open_tasks = {t.name: t for t in profile.tasks.open}
        written: dict[str, dg.MaterializeResult] = {}
        for task in (t for t in context.partition_keys if t in open_tasks):
            spec = open_tasks[task]
            records, unreadable = _open_task_records(spec)
            built = open_task_rows(task, records, lambda doc, spec=spec: render_open_task(doc, spec), profile.tasks.max_tokens,
                                   lambda r, spec=spec: f"{spec.name}/{r['shard']}")
            built.quarantine.extend(unreadable)
            written[task] = write_built(context, tables, TASKS, task, built, len(records) + len(unreadable),
                                        {"template": dg.MetadataValue.text(spec.template)})
        restruct = [t for t in context.partition_keys if t not in open_tasks]
        extra: dict = {}
        if restruct:
            topics = [t for t in context.instance.get_dynamic_partitions(TOPICS.name) if tables.exists(SYNTHETIC, t)]
            if not topics:
                raise dg.Failure(f"no {SYNTHETIC} partitions are materialized yet; materialize at least one topic first")
            seeds = pl.concat([tables.read(SYNTHETIC, t) for t in topics])
            requests = {task: restruct_requests(task, seeds, profile) for task in restruct}
            gen, replies, extra = _generate_together(context, generator, requests)
            for task in restruct:
                written[task] = write_built(context, tables, TASKS, task, restruct_rows(task, requests[task], replies[task], profile,
                                                                                          gen.backend.model),
                                            min(seeds.height, profile.tasks.seeds_per_task), {})
            extra["seed_topics"] = dg.MetadataValue.int(len(topics))
        return _with_metadata(combined(written), extra)

    return [synthetic_documents, task_documents]

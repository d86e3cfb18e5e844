"""Automation: new shards start curation, CPU data stages follow their inputs, GPU stages wait for the week.

- `new_shards_sensor` lists the files of every file-based source; a shard that appeared (or
  changed size or time) since its last tick requests `curate_sources` for that source.
- Data stages downstream carry `AutomationCondition.eager()`: once their inputs update they
  rematerialize (dedup, embeddings, topics, decontamination, mixture, packing).
- Steps that need a GPU or an LLM — synthesis through the generator, training, lm-eval, the
  leakage check — carry `on_cron(WEEKLY)`: after the weekly tick they run once, when all their
  inputs have updated since it. They are never triggered by every upstream change.
- `weekly_rebuild` requests `curate_sources` for every source each week (hub sources stream
  anew), and the conditions above carry the rebuild through the graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import dagster as dg

from hare_assets.lib.profile import Profile
from hare_assets.lib.readers import list_shards

WEEKLY = "0 3 * * 1"  # Mondays 03:00 UTC
SENSOR = "new_shards_sensor"
SCHEDULE = "weekly_rebuild"

EAGER = (
    "deduplicated_documents", "document_embeddings", "topic_clusters", "topic_documents",
    "benchmark_ngram_index", "decontaminated_documents", "decontaminated_synthetic", "decontaminated_tasks",
    "contamination_hits", "training_mixture", "packed_sequences",
)  # fmt: skip
ON_SCHEDULE = (
    "benchmark_sets", "synthetic_documents", "task_documents", "checkpoint", "benchmark_scores",
    "benchmark_paraphrases", "leakage_report",
)  # fmt: skip


def condition_for(asset: str) -> dg.AutomationCondition | None:
    if asset in EAGER:
        return dg.AutomationCondition.eager()
    if asset in ON_SCHEDULE:
        return dg.AutomationCondition.on_cron(WEEKLY)
    return None  # raw/clean: the sensor and the schedule request them


def with_automation(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The graph's assets with the conditions above (one policy, applied in one place)."""
    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        condition = condition_for(spec.key.to_user_string())
        return spec.replace_attributes(automation_condition=condition) if condition else spec

    return list(dg.map_asset_specs(apply, list(assets)))


def shard_state(profile: Profile) -> dict[str, dict[str, str]]:
    """Per file-based source: shard → "size:mtime_ns" (hub sources have no files to watch)."""
    from pathlib import Path

    state: dict[str, dict[str, str]] = {}
    for source in profile.sources:
        if source.format == "hf" or "://" in (source.path or ""):
            continue
        shards = {}
        root = Path(source.path)
        for shard in list_shards(source):
            path = root / shard if root.is_dir() else root
            stat = path.stat()
            shards[shard] = f"{stat.st_size}:{stat.st_mtime_ns}"
        state[source.name] = shards
    return state


def build_automation(profile: Profile, curate_job: str) -> tuple[list[dg.SensorDefinition], list[dg.ScheduleDefinition]]:
    @dg.sensor(name=SENSOR, job_name=curate_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Requests curate_sources for a source when a shard appears or changes in its folder.")
    def new_shards_sensor(context: dg.SensorEvaluationContext):
        current = shard_state(profile)
        if context.cursor is None:
            context.update_cursor(json.dumps(current, sort_keys=True))
            return dg.SkipReason(f"recorded {sum(map(len, current.values()))} shards of {len(current)} sources as the baseline")
        seen = json.loads(context.cursor)
        requests = []
        for source, shards in current.items():
            changed = sorted(s for s, v in shards.items() if seen.get(source, {}).get(s) != v)
            if changed:
                key = json.dumps(sorted(shards.items()))
                requests.append(dg.RunRequest(
                    partition_key=source, run_key=f"{source}:{hash(key) & 0xFFFFFFFF:08x}",
                    tags={"hare/new_shards": ",".join(changed)[:200]},
                ))
                context.log.info(f"{source}: new or changed shards {changed}")
        context.update_cursor(json.dumps(current, sort_keys=True))
        return requests or dg.SkipReason("no new shards")

    @dg.schedule(name=SCHEDULE, cron_schedule=WEEKLY, job_name=curate_job, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Weekly rebuild: curate every source; automation carries it downstream, GPU steps on the same tick.")
    def weekly_rebuild(context: dg.ScheduleEvaluationContext):
        return [dg.RunRequest(partition_key=s.name, run_key=f"{s.name}:{context.scheduled_execution_time:%Y-%m-%d}")
                for s in profile.sources]

    return [new_shards_sensor], [weekly_rebuild]

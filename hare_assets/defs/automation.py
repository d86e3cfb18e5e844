"""Automation: new shards start their block, CPU data stages follow their inputs, GPU stages wait for the week.

- `new_shards_sensor` lists every source through fsspec (local folders and remote URLs),
  plans the manifest update from the stored manifest (sizes and times only: it reads no
  shard), registers the new blocks and requests `curate_block` for exactly the new and
  changed blocks. Until a first `shard_manifest` exists it only waits: the first ingestion
  of a corpus is started by a person (`hare demo`, or the manifest and a backfill in the UI). Run keys are the block and its membership, so they are stable across
  ticks and daemon restarts and a block is requested once per content.
- Data stages downstream carry `AutomationCondition.eager()`: once their inputs update they
  rematerialize (the duplicate decision, dedup and decontamination per block, embeddings,
  topics, mixture, packing). A block whose inputs did not change skips its shards.
- Steps that need a GPU or an LLM — synthesis through the generator, training, lm-eval, the
  leakage check — carry `on_cron(WEEKLY)`: after the weekly tick they run once, when all their
  inputs have updated since it. They are never triggered by every upstream change.
- `weekly_rebuild` requests `curate_block` for every block each week (unchanged shards are
  skipped), and the conditions above carry the rebuild through the graph.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from hare_assets.defs.blocks import MANIFEST
from hare_assets.defs.ingest.partitions import BLOCKS
from hare_assets.defs.resources import HareStorage
from hare_assets.lib.profile import Profile
from hare_assets.lib.shards import ManifestUpdate, list_source, listing_fingerprint, membership_fingerprint, update_manifest

WEEKLY = "0 3 * * 1"  # Mondays 03:00 UTC
SENSOR = "new_shards_sensor"
SCHEDULE = "weekly_rebuild"

EAGER = (
    "duplicate_decisions", "deduplicated_documents", "document_embeddings", "topic_clusters", "topic_documents",
    "benchmark_ngram_index", "decontaminated_documents", "decontaminated_synthetic", "decontaminated_tasks",
    "contamination_hits", "document_tokens", "training_mixture", "packed_sequences",
)  # fmt: skip
ON_SCHEDULE = (
    "benchmark_sets", "synthetic_documents", "task_documents", "checkpoint", "benchmark_scores", "baseline_scores",
    "benchmark_paraphrases", "leakage_report",
)  # fmt: skip


def condition_for(asset: str, on_new_data: str = "hold") -> dg.AutomationCondition | None:
    """`on_new_data` (training.on_new_data): under `hold` the schedule never retrains a checkpoint."""
    if asset in EAGER:
        return dg.AutomationCondition.eager()
    if asset in ON_SCHEDULE and not (asset == "checkpoint" and on_new_data == "hold"):
        return dg.AutomationCondition.on_cron(WEEKLY)
    return None  # manifest and the block stages: the sensor and the schedule request them; a held checkpoint: you


def with_automation(assets: Iterable[dg.AssetsDefinition], on_new_data: str = "hold") -> list[dg.AssetsDefinition]:
    """The graph's assets with the conditions above (one policy, applied in one place)."""
    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        condition = condition_for(spec.key.to_user_string(), on_new_data)
        return spec.replace_attributes(automation_condition=condition) if condition else spec

    return list(dg.map_asset_specs(apply, list(assets)))


def plan_blocks(profile: Profile, storage: HareStorage) -> ManifestUpdate:
    """What a manifest update would do now, without reading any shard's content."""
    tables = storage.tables
    previous = tables.read(MANIFEST) if tables.exists(MANIFEST) else None
    listing = [f for source in profile.sources for f in list_source(source)]
    return update_manifest(previous, listing, [s.name for s in profile.sources], profile.ingest.block_bytes,
                           fingerprint=listing_fingerprint)


def build_automation(profile: Profile, block_job: str) -> tuple[list[dg.SensorDefinition], list[dg.ScheduleDefinition]]:
    @dg.sensor(name=SENSOR, job_name=block_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Registers the blocks of new shards and requests curate_block for exactly the new and changed blocks.")
    def new_shards_sensor(context: dg.SensorEvaluationContext, storage: HareStorage):
        if not storage.tables.exists(MANIFEST):
            return dg.SkipReason(f"no {MANIFEST} yet: materialize it (or run hare demo) to ingest the corpus a first time")
        plan = plan_blocks(profile, storage)
        blocks = plan.blocks_to_run
        if not blocks:
            return dg.SkipReason(f"no new or changed shards among {plan.manifest.height} known")
        known = set(context.instance.get_dynamic_partitions(BLOCKS.name))
        context.log.info(f"new shards {plan.new_shards[:10]}, changed {plan.changed_shards[:10]}, deleted {plan.deleted_shards[:10]}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(partition_key=block, run_key=f"{block}:{membership_fingerprint(plan.manifest, block)}",
                              tags={"hare/block": block})
                for block in blocks
            ],
            dynamic_partitions_requests=[BLOCKS.build_add_request([b for b in blocks if b not in known])],
        )

    @dg.schedule(name=SCHEDULE, cron_schedule=WEEKLY, job_name=block_job, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Weekly rebuild: every block through curate_block (finished shards skip); automation carries it on.")
    def weekly_rebuild(context: dg.ScheduleEvaluationContext):
        blocks = context.instance.get_dynamic_partitions(BLOCKS.name)
        return [dg.RunRequest(partition_key=b, run_key=f"{b}:{context.scheduled_execution_time:%Y-%m-%d}") for b in blocks]

    return [new_shards_sensor], [weekly_rebuild]

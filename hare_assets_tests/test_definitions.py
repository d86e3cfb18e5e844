"""The one entry point loads, and the graph has the designed shape."""

import dagster as dg
import pytest

from hare_assets.definitions import defs
from hare_assets.defs.automation import WEEKLY
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.paths import PROFILES_DIR
from hare_assets.lib.profile import load_profile

EXPECTED = {
    "shard_manifest": ("ingest", False),
    "raw_documents": ("ingest", True),
    "clean_documents": ("curate", True),
    "minhash_signatures": ("curate", True),
    "duplicate_decisions": ("curate", False),
    "deduplicated_documents": ("curate", True),
    "document_embeddings": ("curate", False),
    "topic_clusters": ("curate", False),
    "topic_documents": ("curate", True),
    "synthetic_documents": ("synthesize", True),
    "task_documents": ("synthesize", True),
    "benchmark_sets": ("integrity", True),
    "benchmark_ngram_index": ("integrity", False),
    "decontaminated_documents": ("integrity", True),
    "decontaminated_synthetic": ("integrity", True),
    "decontaminated_tasks": ("integrity", True),
    "contamination_hits": ("integrity", False),
    "document_tokens": ("mixture", True),
    "training_mixture": ("mixture", True),
    "packed_sequences": ("mixture", True),
    "checkpoint": ("model", True),
    "benchmark_scores": ("evaluate", True),
    "baseline_scores": ("evaluate", True),
    "benchmark_paraphrases": ("evaluate", True),
    "leakage_report": ("evaluate", True),
}
# Assets that filter rows account for every one of them; the others summarise or train.
ACCOUNTED = {"raw_documents", "clean_documents", "deduplicated_documents", "document_embeddings", "topic_clusters", "document_tokens",
             "topic_documents", "synthetic_documents", "task_documents", "decontaminated_documents",
             "decontaminated_synthetic", "decontaminated_tasks", "benchmark_paraphrases"}


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)


def test_assets_groups_partitions_and_checks():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(EXPECTED)
    for name, (group, partitioned) in EXPECTED.items():
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == group
        assert (node.partitions_def is not None) == partitioned
        assert node.kinds and node.description
        assert (dg.AssetCheckKey(dg.AssetKey(name), "rows_accounted") in node.check_keys) == (name in ACCOUNTED), name
    for name in ("raw_documents", "clean_documents", "minhash_signatures", "deduplicated_documents", "decontaminated_documents"):
        assert graph.get(dg.AssetKey(name)).partitions_def == dg.DynamicPartitionsDefinition(name="blocks"), name


def test_lineage_runs_from_task_text_back_to_raw():
    graph = defs.resolve_asset_graph()
    chain = ["task_documents", "synthetic_documents", "topic_documents", "topic_clusters", "document_embeddings",
             "deduplicated_documents", "clean_documents", "raw_documents", "shard_manifest"]
    for child, parent in zip(chain, chain[1:]):
        assert dg.AssetKey(parent) in graph.get(dg.AssetKey(child)).parent_keys, (child, parent)


def test_lineage_runs_from_benchmark_scores_back_to_raw():
    graph = defs.resolve_asset_graph()
    names = {k.to_user_string() for k in graph.get_ancestor_asset_keys(dg.AssetKey("benchmark_scores"))}
    assert {"checkpoint", "packed_sequences", "training_mixture", "decontaminated_documents", "decontaminated_synthetic",
            "decontaminated_tasks", "synthetic_documents", "topic_clusters", "deduplicated_documents", "raw_documents",
            "duplicate_decisions", "minhash_signatures", "shard_manifest",
            "benchmark_sets", "contamination_hits"} <= names


def test_mixture_reads_only_decontaminated_data():
    graph = defs.resolve_asset_graph()
    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("training_mixture") == {"decontaminated_documents", "decontaminated_synthetic", "decontaminated_tasks",
                                           "topic_clusters", "document_tokens"}
    assert parents("document_tokens") == {"decontaminated_documents"}  # D1's token cache, made from decontaminated rows


def test_gpu_steps_share_the_pool_and_wait_for_the_schedule():
    graph = defs.resolve_asset_graph()
    weekly = dg.AutomationCondition.on_cron(WEEKLY)
    for name in ("checkpoint", "benchmark_scores", "leakage_report"):
        node = graph.get(dg.AssetKey(name))
        assert node.pools == {"gpu"}, name
        # training.on_new_data defaults to hold: the schedule scores and checks what exists, never retrains
        assert node.automation_condition == (None if name == "checkpoint" else weekly), name
    for policy in ("continue", "restart"):
        profile = load_profile("demo")
        profile = profile.model_copy(update={"training": profile.training.model_copy(update={"on_new_data": policy})})
        node = build_definitions(profile).resolve_asset_graph().get(dg.AssetKey("checkpoint"))
        assert node.automation_condition == weekly, policy
    assert graph.get(dg.AssetKey("deduplicated_documents")).automation_condition == dg.AutomationCondition.eager()
    assert graph.get(dg.AssetKey("raw_documents")).automation_condition is None


def test_partitions_topics_dynamic_tasks_static():
    graph = defs.resolve_asset_graph()
    assert isinstance(graph.get(dg.AssetKey("synthetic_documents")).partitions_def, dg.DynamicPartitionsDefinition)
    assert graph.get(dg.AssetKey("task_documents")).partitions_def.get_partition_keys() == [
        "qa", "mcq", "cloze", "summary", "news_topics"]


def test_jobs_and_resources():
    assert {job.name for job in defs.jobs} >= {"scan_shards", "curate_block", "deduplicate_corpus", "finish_block",
                                               "cluster_topics", "synthesize_topic", "build_tasks", "load_benchmark",
                                               "train_stage", "evaluate_checkpoint", "evaluate_baseline"}
    assert {"storage", "generator", "launcher"} <= set(defs.resources)
    assert {s.name for s in defs.sensors} == {"new_shards_sensor", "run_health_sensor"}
    assert {s.name for s in defs.schedules} == {"weekly_rebuild"}


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
def test_every_shipped_profile_builds_a_valid_graph(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HARE_REAL_DATA", str(tmp_path))  # only expanded into paths here, not read
    built = build_definitions(load_profile(name), home=str(tmp_path))
    dg.Definitions.validate_loadable(built)

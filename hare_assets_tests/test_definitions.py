"""The one entry point loads, and the graph has the designed shape."""

import dagster as dg
import pytest

from hare_assets.definitions import defs
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.paths import PROFILES_DIR
from hare_assets.lib.profile import load_profile

EXPECTED = {
    "raw_documents": ("ingest", True),
    "clean_documents": ("curate", True),
    "deduplicated_documents": ("curate", False),
    "document_embeddings": ("curate", False),
    "topic_clusters": ("curate", False),
    "topic_documents": ("curate", True),
    "synthetic_documents": ("synthesize", True),
    "task_documents": ("synthesize", True),
}


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
        assert dg.AssetCheckKey(dg.AssetKey(name), "rows_accounted") in node.check_keys
    sources = graph.get(dg.AssetKey("raw_documents")).partitions_def.get_partition_keys()
    assert sources == ["encyclopedia", "forum", "news", "books"]


def test_lineage_runs_from_task_text_back_to_raw():
    graph = defs.resolve_asset_graph()
    chain = ["task_documents", "synthetic_documents", "topic_documents", "topic_clusters", "document_embeddings",
             "deduplicated_documents", "clean_documents", "raw_documents"]
    for child, parent in zip(chain, chain[1:]):
        assert dg.AssetKey(parent) in graph.get(dg.AssetKey(child)).parent_keys, (child, parent)


def test_partitions_topics_dynamic_tasks_static():
    graph = defs.resolve_asset_graph()
    assert isinstance(graph.get(dg.AssetKey("synthetic_documents")).partitions_def, dg.DynamicPartitionsDefinition)
    assert graph.get(dg.AssetKey("task_documents")).partitions_def.get_partition_keys() == [
        "qa", "mcq", "cloze", "summary", "news_topics"]


def test_jobs_and_resources():
    assert {job.name for job in defs.jobs} >= {"curate_sources", "curate_corpus", "synthesize_topic", "build_tasks"}
    assert {"storage", "generator"} <= set(defs.resources)


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
def test_every_shipped_profile_builds_a_valid_graph(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HARE_REAL_DATA", str(tmp_path))  # only expanded into paths here, not read
    built = build_definitions(load_profile(name), home=str(tmp_path))
    dg.Definitions.validate_loadable(built)

"""The one entry point loads, and the graph has the designed shape."""

import dagster as dg

from hare_assets.definitions import defs

EXPECTED = {
    "raw_documents": ("ingest", True),
    "clean_documents": ("curate", True),
    "deduplicated_documents": ("curate", False),
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


def test_lineage_runs_from_dedup_back_to_raw():
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("deduplicated_documents")).parent_keys == {dg.AssetKey("clean_documents")}
    assert graph.get(dg.AssetKey("clean_documents")).parent_keys == {dg.AssetKey("raw_documents")}


def test_jobs_and_resources():
    assert {job.name for job in defs.jobs} >= {"curate_sources", "deduplicate"}
    assert "storage" in defs.resources

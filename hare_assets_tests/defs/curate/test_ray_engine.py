"""D1 through a local Ray cluster (`engine: ray`) equals D1 through this machine's processes: the same kept documents,
the same duplicate clusters, the same accounting, on the demo corpus and on the real corpora."""

from __future__ import annotations

import dagster as dg
import polars as pl

from hare_assets.defs.graph import build_definitions
from hare_assets.defs.resources import ShardEngine
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore

# What the two engines must agree on: the rows each stage kept, removed (with reasons) and quarantined.
_TABLES = {
    "raw_documents": ["doc_id", "source", "shard", "row", "text"],
    "raw_documents__quarantine": ["source", "shard", "row", "reason"],
    "clean_documents": ["doc_id", "shard", "row", "text", "edits"],
    "clean_documents__removed": ["shard", "row", "reason", "detail"],
    "duplicate_decisions": ["shard", "row", "reason", "kept_shard", "kept_row", "kept_doc_id", "similarity"],
    "deduplicated_documents": ["doc_id", "shard", "row"],
    "deduplicated_documents__removed": ["doc_id", "reason", "kept_doc_id"],
}
_DECONTAMINATED = {
    "decontaminated_documents": ["doc_id", "shard", "row", "text"],
    "decontaminated_documents__removed": ["doc_id", "reason", "detail"],
}


def _rows(store: TableStore, table: str, columns: list[str]) -> pl.DataFrame:
    return store.read(table, columns=columns).sort(columns[:3]) if store.exists(table) else pl.DataFrame()


def _same_d1(local: TableStore, ray: TableStore, tables: dict[str, list[str]]) -> None:
    for table, columns in tables.items():
        expected = _rows(local, table, columns)
        assert _rows(ray, table, columns).equals(expected), table
    assert local.read("clean_documents").height > 0


def _engines(results: dict[str, dg.ExecuteInJobResult]) -> dict[str, set[str]]:
    """Per block stage, where its shards ran (the `engine` metadata of its materializations)."""
    where: dict[str, set[str]] = {}
    for result in results.values():
        for event in result.get_asset_materialization_events():
            if "engine" in event.materialization.metadata:
                text = event.materialization.metadata["engine"].value
                where.setdefault(event.materialization.asset_key.to_user_string(), set()).add(text.split(":")[0])
    return where


def _through_ray(profile_name: str, home, materialize_d1, decontaminate: bool):
    defs = build_definitions(load_profile(profile_name), home=str(home))
    instance = dg.DagsterInstance.ephemeral()
    return materialize_d1(defs, instance, {"engine": ShardEngine(kind="ray")}, decontaminate), TableStore(str(home))


def test_real_corpora_d1_through_ray_equals_the_local_engine(corpora, ray_cluster, tmp_path, materialize_d1):
    _, local, local_results, _, _ = corpora
    results, ray = _through_ray("local-corpora", tmp_path / "ray", materialize_d1, decontaminate=False)
    _same_d1(local, ray, _TABLES)
    stages = ["clean_documents", "deduplicated_documents", "duplicate_decisions", "minhash_signatures", "raw_documents"]
    assert _engines(results) == dict.fromkeys(stages, {"ray"}) and _engines(local_results) == dict.fromkeys(stages, {"local"})
    for name, result in results.items():  # the accounting checks, evaluated on the Ray run's own counts
        assert [(c.asset_key, c.passed, c.metadata) for c in result.get_asset_check_evaluations()] == \
            [(c.asset_key, c.passed, c.metadata) for c in local_results[name].get_asset_check_evaluations()], name


def test_demo_d1_through_ray_equals_the_demo_run(demo_run, ray_cluster, tmp_path, materialize_d1):
    local, _ = demo_run
    results, ray = _through_ray("demo", tmp_path / "ray", materialize_d1, decontaminate=True)
    _same_d1(local, ray, {**_TABLES, **_DECONTAMINATED})
    assert set(_engines(results)) == {"raw_documents", "clean_documents", "minhash_signatures", "duplicate_decisions",
                                      "deduplicated_documents", "decontaminated_documents"}
    assert set.union(*_engines(results).values()) == {"ray"}

"""Fixtures shared by the real-data materializations under defs/."""

from __future__ import annotations

import dagster as dg
import pytest

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore


def _materialize_d1(defs: dg.Definitions, instance: dg.DagsterInstance, resources: dict | None = None,
                    decontaminate: bool = False) -> dict[str, dg.ExecuteInJobResult]:
    """D1 the way the jobs run it: the manifest, each block through raw → clean → signatures, the corpus-wide decision,
    each block's deduplicated documents (and, with `decontaminate`, the benchmarks, their index and each block's
    decontaminated documents). Every run must succeed."""
    assets, resources = list(defs.assets), {**defs.resources, **(resources or {})}

    def run(selection: list[str], partition: str | None = None) -> dg.ExecuteInJobResult:
        result = dg.materialize(assets, selection=selection, partition_key=partition, resources=resources, instance=instance)
        assert result.success, (selection, partition)
        return result

    results = {"manifest": run(["shard_manifest"])}
    blocks = sorted(instance.get_dynamic_partitions("blocks"))
    for block in blocks:
        results[block] = run(["raw_documents", "clean_documents", "minhash_signatures"], block)
    results["decisions"] = run(["duplicate_decisions"])
    if decontaminate:
        for benchmark in defs.get_assets_def("benchmark_sets").partitions_def.get_partition_keys():
            run(["benchmark_sets"], benchmark)
        run(["benchmark_ngram_index"])
    for block in blocks:
        results[f"dedup {block}"] = run(["deduplicated_documents", *(["decontaminated_documents"] if decontaminate else [])], block)
    return results


@pytest.fixture(scope="session")
def materialize_d1():
    return _materialize_d1


@pytest.fixture(scope="session")
def corpora(real_data, tmp_path_factory):
    """Materialize the manifest, raw → clean → signatures for every block, the duplicate decision and each block's
    deduplicated documents into a fresh home (once per session). The real corpora are small: a block per source."""
    home = str(tmp_path_factory.mktemp("real-home"))
    profile = load_profile("local-corpora")
    defs = build_definitions(profile, home=home)
    instance = dg.DagsterInstance.ephemeral()
    return profile, TableStore(home), _materialize_d1(defs, instance), defs, instance

"""Fixtures shared by the real-data materializations under defs/."""

import dagster as dg
import pytest

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore


@pytest.fixture(scope="session")
def corpora(real_data, tmp_path_factory):
    """Materialize the manifest, raw → clean → signatures for every block, the duplicate decision and each block's
    deduplicated documents into a fresh home (once per session). The real corpora are small: a block per source."""
    home = str(tmp_path_factory.mktemp("real-home"))
    profile = load_profile("local-corpora")
    defs = build_definitions(profile, home=home)
    assets = list(defs.assets)
    resources = dict(defs.resources)
    instance = dg.DagsterInstance.ephemeral()
    results = {"manifest": dg.materialize(assets, selection=["shard_manifest"], resources=resources, instance=instance)}
    blocks = sorted(instance.get_dynamic_partitions("blocks"))
    for block in blocks:
        results[block] = dg.materialize(assets, selection=["raw_documents", "clean_documents", "minhash_signatures"],
                                        partition_key=block, resources=resources, instance=instance)
    results["decisions"] = dg.materialize(assets, selection=["duplicate_decisions"], resources=resources, instance=instance)
    for block in blocks:
        results[f"dedup {block}"] = dg.materialize(assets, selection=["deduplicated_documents"], partition_key=block,
                                                   resources=resources, instance=instance)
    return profile, TableStore(home), results, defs, instance

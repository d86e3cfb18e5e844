"""Fixtures shared by the real-data materializations under defs/."""

import dagster as dg
import pytest

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore


@pytest.fixture(scope="session")
def corpora(real_data, tmp_path_factory):
    """Materialize raw → clean for every source, then dedup, into a fresh home (once per session)."""
    home = str(tmp_path_factory.mktemp("real-home"))
    profile = load_profile("local-corpora")
    defs = build_definitions(profile, home=home)
    assets = list(defs.assets)
    resources = dict(defs.resources)
    instance = dg.DagsterInstance.ephemeral()
    results = {}
    for source in profile.sources:
        results[source.name] = dg.materialize(
            assets, selection=["raw_documents", "clean_documents"], partition_key=source.name,
            resources=resources, instance=instance,
        )
    results["dedup"] = dg.materialize(assets, selection=["deduplicated_documents"], resources=resources, instance=instance)
    return profile, TableStore(home), results, defs

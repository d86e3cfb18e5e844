"""Build the whole asset graph for one profile (the profile fixes the source partitions)."""

import dagster as dg

from hare_assets.defs.curate.assets import CLEAN, DEDUP, build_curate_assets
from hare_assets.defs.ingest.assets import RAW, build_ingest_assets
from hare_assets.defs.ingest.partitions import source_partitions
from hare_assets.defs.resources import HareStorage
from hare_assets.lib.paths import hare_home
from hare_assets.lib.profile import Profile

CURATE_SOURCES_JOB = "curate_sources"
DEDUPLICATE_JOB = "deduplicate"


def build_definitions(profile: Profile, home: str | None = None) -> dg.Definitions:
    sources = source_partitions(profile)
    assets = [*build_ingest_assets(profile, sources), *build_curate_assets(profile, sources)]
    jobs = [
        dg.define_asset_job(
            CURATE_SOURCES_JOB,
            selection=dg.AssetSelection.assets(RAW, CLEAN),
            description="Ingest and clean one source partition.",
        ),
        dg.define_asset_job(
            DEDUPLICATE_JOB,
            selection=dg.AssetSelection.assets(DEDUP),
            description="Exact + near-duplicate removal across every cleaned source.",
        ),
    ]
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        resources={"storage": HareStorage(root=home or hare_home())},
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )

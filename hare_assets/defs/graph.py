"""Build the whole asset graph for one profile (the profile fixes the source and task partitions)."""

import dagster as dg

from hare_assets.defs.curate.assets import CLEAN, DEDUP, build_curate_assets
from hare_assets.defs.curate.topics import CLUSTERS, EMBEDDINGS, TOPIC_DOCUMENTS, build_topic_assets
from hare_assets.defs.ingest.assets import RAW, build_ingest_assets
from hare_assets.defs.ingest.partitions import source_partitions
from hare_assets.defs.resources import GeneratorResource, HareStorage
from hare_assets.defs.synthesize.assets import SYNTHETIC, TASKS, build_synthesize_assets
from hare_assets.defs.synthesize.partitions import task_partitions
from hare_assets.lib.paths import cache_dir, hare_home
from hare_assets.lib.profile import Profile

CURATE_SOURCES_JOB = "curate_sources"
CURATE_CORPUS_JOB = "curate_corpus"
SYNTHESIZE_TOPIC_JOB = "synthesize_topic"
BUILD_TASKS_JOB = "build_tasks"


def generator_resource(profile: Profile) -> GeneratorResource:
    g = profile.generator
    return GeneratorResource(
        backend=g.backend, model=g.model, base_url=g.base_url, device=g.device,
        api_key=dg.EnvVar(g.api_key_env) if g.api_key_env else None,
        timeout=g.timeout, max_concurrency=g.max_concurrency, max_retries=g.max_retries, batch_size=g.batch_size,
        cache_path=str(cache_dir() / "generation.sqlite"),
    )


def build_definitions(profile: Profile, home: str | None = None) -> dg.Definitions:
    sources = source_partitions(profile)
    generator = generator_resource(profile)
    assets = [
        *build_ingest_assets(profile, sources),
        *build_curate_assets(profile, sources),
        *build_topic_assets(profile),
        *build_synthesize_assets(profile, task_partitions(profile), gpu=generator.uses_gpu),
    ]
    jobs = [
        dg.define_asset_job(CURATE_SOURCES_JOB, selection=dg.AssetSelection.assets(RAW, CLEAN),
                            description="Ingest and clean one source partition."),
        dg.define_asset_job(CURATE_CORPUS_JOB, selection=dg.AssetSelection.assets(DEDUP, EMBEDDINGS, CLUSTERS),
                            description="Deduplicate across sources, embed, and cluster into topics (registers topic partitions)."),
        dg.define_asset_job(SYNTHESIZE_TOPIC_JOB, selection=dg.AssetSelection.assets(TOPIC_DOCUMENTS, SYNTHETIC),
                            description="One topic's D1 documents and its D2 synthetic documents."),
        dg.define_asset_job(BUILD_TASKS_JOB, selection=dg.AssetSelection.assets(TASKS),
                            description="One D3 task partition."),
    ]
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        resources={"storage": HareStorage(root=home or hare_home()), "generator": generator},
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )

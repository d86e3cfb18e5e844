"""Build the whole asset graph for one profile (the profile fixes the source, task and benchmark partitions)."""

import dagster as dg

from hare_assets.defs.automation import build_automation, with_automation
from hare_assets.defs.blocks import MANIFEST
from hare_assets.defs.curate.assets import CLEAN, DECISIONS, DEDUP, SIGNATURES, build_curate_assets
from hare_assets.defs.curate.partitions import TOPICS
from hare_assets.defs.curate.topics import CLUSTERS, EMBEDDINGS, TOPIC_DOCUMENTS, build_topic_assets
from hare_assets.defs.evaluate.leakage import LEAKAGE, PARAPHRASES, build_leakage_assets
from hare_assets.defs.evaluate.scores import BASELINE_SCORES, build_score_assets
from hare_assets.defs.ingest.assets import RAW, build_ingest_assets
from hare_assets.defs.integrity.assets import BENCHMARK_SETS, DECONTAMINATED, HITS, INDEX, build_integrity_assets
from hare_assets.defs.integrity.partitions import benchmark_partitions
from hare_assets.defs.model.assets import CHECKPOINT, MIXTURE, PACKED, TOKENS, build_model_assets
from hare_assets.defs.resources import GeneratorResource, HareStorage, JobLauncher, ShardEngine
from hare_assets.defs.runs import run_health_sensor
from hare_assets.defs.synthesize.assets import SYNTHETIC, TASKS, build_synthesize_assets
from hare_assets.defs.synthesize.partitions import task_partitions
from hare_assets.lib.lineage import SCORES
from hare_assets.lib.paths import cache_dir, hare_home
from hare_assets.lib.profile import Profile

SCAN_JOB = "scan_shards"
CURATE_BLOCK_JOB = "curate_block"
DEDUP_JOB = "deduplicate_corpus"
FINISH_BLOCK_JOB = "finish_block"
CLUSTER_JOB = "cluster_topics"
SYNTHESIZE_TOPIC_JOB = "synthesize_topic"
BUILD_TASKS_JOB = "build_tasks"
BENCHMARK_JOB = "load_benchmark"
TRAIN_STAGE_JOB = "train_stage"
EVALUATE_JOB = "evaluate_checkpoint"
BASELINE_JOB = "evaluate_baseline"
LEAKAGE_JOB = "check_leakage"
HITS_JOB = "contamination_report"


def generator_resource(profile: Profile) -> GeneratorResource:
    g = profile.generator
    return GeneratorResource(
        backend=g.backend, model=g.model, base_url=g.base_url, device=g.device, dtype=g.dtype,
        api_key=dg.EnvVar(g.api_key_env) if g.api_key_env else None,
        timeout=g.timeout, max_concurrency=g.max_concurrency, max_retries=g.max_retries, batch_size=g.batch_size,
        cache_path=str(cache_dir() / "generation.sqlite"),
    )


def launcher_resource(profile: Profile) -> JobLauncher:
    t = profile.training
    return JobLauncher(launcher=t.launcher, processes=t.processes, image=t.k8s.image, namespace=t.k8s.namespace,
                       pod_spec=t.k8s.pod_spec)


def build_definitions(profile: Profile, home: str | None = None) -> dg.Definitions:
    tasks = task_partitions(profile)
    benchmarks = benchmark_partitions(profile)
    generator = generator_resource(profile)
    assets = with_automation([
        *build_ingest_assets(profile),
        *build_curate_assets(profile),
        *build_topic_assets(profile),
        *build_synthesize_assets(profile, tasks, gpu=generator.uses_gpu),
        *build_integrity_assets(profile, benchmarks, tasks),
        *build_model_assets(profile, tasks, TOPICS),
        *build_score_assets(profile, benchmarks),
        *build_leakage_assets(profile, benchmarks, gpu=generator.uses_gpu),
    ], profile.training.on_new_data)
    job = dg.define_asset_job
    select = dg.AssetSelection.assets
    jobs = [
        job(SCAN_JOB, selection=select(MANIFEST), description="List every source's shards and group new ones into blocks."),
        job(CURATE_BLOCK_JOB, selection=select(MANIFEST, RAW, CLEAN, SIGNATURES),
            description="One block: refresh the manifest, then ingest, clean and sign its shards (finished shards are skipped)."),
        job(DEDUP_JOB, selection=select(DECISIONS, INDEX),
            description="Decide the duplicates of the whole corpus from the blocks' signatures; index every benchmark's n-grams."),
        job(FINISH_BLOCK_JOB, selection=select(DEDUP, DECONTAMINATED["d1"], TOKENS),
            description="One block: drop its duplicates, decontaminate it, tokenize it for the mixtures."),
        job(CLUSTER_JOB, selection=select(EMBEDDINGS, CLUSTERS),
            description="Embed D1 and cluster it into topics (registers topic partitions)."),
        job(SYNTHESIZE_TOPIC_JOB, selection=select(TOPIC_DOCUMENTS, SYNTHETIC, DECONTAMINATED["d2"]),
            description="One topic's D1 documents and its D2 synthetic documents, decontaminated."),
        job(BUILD_TASKS_JOB, selection=select(TASKS, DECONTAMINATED["d3"]), description="One D3 task partition, decontaminated."),
        job(BENCHMARK_JOB, selection=select(BENCHMARK_SETS, PARAPHRASES),
            description="Load and normalise one benchmark (every split) and paraphrase items for the leakage check."),
        job(TRAIN_STAGE_JOB, selection=select(MIXTURE, PACKED, CHECKPOINT),
            description="One stage: its training mixture, packed blocks and checkpoint (stage2 continues stage1)."),
        job(EVALUATE_JOB, selection=select(SCORES), description="lm-eval on one benchmark × stage."),
        job(LEAKAGE_JOB, selection=select(LEAKAGE), description="BenBench-style leakage check of one benchmark."),
        job(HITS_JOB, selection=select(HITS), description="Collect every benchmark hit with its lineage."),
    ]
    if profile.evaluation.baselines:
        jobs.append(job(BASELINE_JOB, selection=select(BASELINE_SCORES), description="lm-eval on one benchmark × baseline model."))
    sensors, schedules = build_automation(profile, CURATE_BLOCK_JOB)
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=[*sensors, run_health_sensor],
        schedules=schedules,
        resources={"storage": HareStorage(root=home or hare_home()), "engine": ShardEngine(**profile.engine.model_dump()),
                   "generator": generator, "launcher": launcher_resource(profile)},
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )

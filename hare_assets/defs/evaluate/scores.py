"""evaluate (scores): lm-eval on each checkpoint and each baseline model, per benchmark, through the job launcher;
every score is kept with the model it belongs to, split into clean vs contaminated items, and explained."""

import json

import dagster as dg
import polars as pl

from hare_assets.defs.integrity.assets import BENCHMARK_SETS, HITS
from hare_assets.defs.metadata import frame_markdown
from hare_assets.defs.model.assets import CHECKPOINT
from hare_assets.defs.model.partitions import STAGES
from hare_assets.defs.resources import HareStorage, JobLauncher
from hare_assets.lib.benchmarks import items_from_frame, load_registry
from hare_assets.lib.evaluation import EvalConfig, metric_label, subset_scores, write_tasks
from hare_assets.lib.generation.models import local_weights
from hare_assets.lib.lineage import (
    BASELINE_STAGE,
    BASELINES,
    CHECKPOINT_SCHEMA,
    SAMPLES_HISTORY,
    SCORES,
    SCORES_HISTORY,
    baseline_id,
    baseline_record,
    diff,
    explain,
    latest_checkpoint,
    previous_evaluated,
    render_diff,
    render_explain,
)
from hare_assets.lib.paths import models_dir
from hare_assets.lib.profile import EvaluationConfig, Profile

SAMPLES = f"{SCORES}__samples"
BASELINE_SCORES = "baseline_scores"
EVALUATION = {"group_name": "evaluate", "kinds": {"pytorch", "parquet"}, "pool": "gpu"}  # lm-eval through the launcher
SCORE_ROWS = {"benchmark": pl.String, "stage": pl.String, "checkpoint_id": pl.String, "metric": pl.String,
              "subset": pl.String, "value": pl.Float64, "stderr": pl.Float64, "n": pl.Int64}


def score_rows(result: dict, subsets: pl.DataFrame, benchmark: str, stage: str, ckpt_id: str) -> pl.DataFrame:
    """Every metric on all items, and the leaderboard metric on the clean and the contaminated items."""
    rows = [{"benchmark": benchmark, "stage": stage, "checkpoint_id": ckpt_id, "metric": metric_label(s["metric"]),
             "subset": "all", "value": s["value"], "stderr": s["stderr"], "n": s["n"]}
            for s in result["scores"] if s["benchmark"] == benchmark]
    main = next((metric_label(s["metric"]) for s in result["scores"] if s["benchmark"] == benchmark and s["main"]), None)
    for r in subsets.filter(pl.col("benchmark") == benchmark).iter_rows(named=True):
        for subset in ("clean", "contaminated"):
            if r[f"n_{subset}"]:
                rows.append({"benchmark": benchmark, "stage": stage, "checkpoint_id": ckpt_id, "metric": main or r["metric"],
                             "subset": subset, "value": r[f"score_{subset}"], "stderr": None, "n": r[f"n_{subset}"]})
    return pl.DataFrame(rows, schema=SCORE_ROWS)


def _score(context: dg.AssetExecutionContext, storage: HareStorage, launcher: JobLauncher, evaluation: EvaluationConfig,
           registry: dict, benchmark: str, stage: str, model_id: str, weights: str) -> dict:
    """lm-eval on one model and benchmark through the launcher. The score rows are stored by partition
    `{benchmark}__{stage}` (a baseline's stage is its name) and in the history `hare diff` reads; returns the
    asset metadata."""
    tables = storage.tables
    out = storage.artifacts_dir / SCORES / benchmark / stage
    items = items_from_frame(tables.read(BENCHMARK_SETS, benchmark))
    tasks = write_tasks({benchmark: items}, registry, out / "tasks")
    config = EvalConfig(
        checkpoint=weights, out_dir=str(out), tasks=tasks, include_path=str(out / "tasks"), backend=evaluation.backend,
        device=evaluation.device, batch_size=evaluation.batch_size, limit=evaluation.limit_for(benchmark),
        num_threads=evaluation.num_threads, max_gen_toks=evaluation.max_gen_toks,
    )
    launcher.run(context, "hare_assets.lib.eval_job", config.to_dict())
    result = json.loads((out / "result.json").read_text())
    samples = pl.read_parquet(out / "samples.parquet")
    hits = tables.read(HITS, columns=["benchmark", "item_id"]) if tables.exists(HITS) else pl.DataFrame(
        schema={"benchmark": pl.String, "item_id": pl.String})
    contaminated = set(hits.filter(pl.col("benchmark") == benchmark).iter_rows())
    rows = score_rows(result, subset_scores(samples, contaminated), benchmark, stage, model_id)
    partition = f"{benchmark}__{stage}"
    tables.write(SAMPLES, samples.with_columns(pl.lit(stage).alias("stage"), pl.lit(model_id).alias("checkpoint_id")), partition)
    tables.write(SCORES_HISTORY, rows, f"{model_id}__{benchmark}")
    tables.write(SAMPLES_HISTORY, samples.select("split", "item_id", "score"), f"{model_id}__{benchmark}")
    tables.write(SCORES, rows, partition)
    return {
        "checkpoint_id": dg.MetadataValue.text(model_id),
        "score": dg.MetadataValue.float(_main(rows)),
        "scores": frame_markdown(rows.select("metric", "subset", pl.col("value").round(4), pl.col("stderr").round(4), "n")),
        "contaminated_items": dg.MetadataValue.int(len({i for _, i in contaminated})),
        "lm_eval": dg.MetadataValue.text(f"{result.get('lm_eval_version')} on {result.get('device')}, {result.get('seconds', 0):.0f}s"),
    }


def _main(rows: pl.DataFrame) -> float:
    main = rows.filter(pl.col("subset") == "all").head(1)
    return float(main["value"][0]) if main.height else float("nan")


def side_by_side(tables, benchmark: str) -> pl.DataFrame:
    """Every model's current main score on one benchmark: the checkpoints' stages and the baselines, in one table."""
    parts = [p for p in tables.partitions(SCORES) if p.startswith(f"{benchmark}__")]
    if not parts:
        return pl.DataFrame(schema={"model": pl.String, "checkpoint_id": pl.String, "metric": pl.String, "value": pl.Float64, "n": pl.Int64})
    rows = pl.concat([tables.read(SCORES, p).filter(pl.col("subset") == "all").head(1) for p in parts], how="diagonal_relaxed")
    return rows.select(pl.col("stage").alias("model"), "checkpoint_id", "metric", pl.col("value").round(4), "n").sort("model")


def build_score_assets(profile: Profile, benchmarks: dg.StaticPartitionsDefinition) -> list[dg.AssetsDefinition]:
    registry = load_registry()
    evaluation = profile.evaluation
    partitions = dg.MultiPartitionsDefinition({"benchmark": benchmarks, "stage": STAGES})

    @dg.asset(
        name=SCORES,
        partitions_def=partitions,
        deps=[
            dg.AssetDep(BENCHMARK_SETS, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("benchmark")),
            dg.AssetDep(CHECKPOINT, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("stage")),
            HITS,
        ],
        **EVALUATION,
        description=(
            "lm-eval harness scores of one checkpoint (stage) on one benchmark, with the leaderboard's shot count, through "
            "the job launcher (HF backend on CPU/GPU, vLLM on GPU); offline from the benchmark files via task folders that "
            "reuse lm-eval's own leaderboard configs. Also the score on clean items vs items with contamination hits, "
            "per-sample logs in `benchmark_scores__samples`, the baselines' scores beside it, and the lineage from the "
            "score to the source shards."
        ),
    )
    def benchmark_scores(context: dg.AssetExecutionContext, storage: HareStorage, launcher: JobLauncher):
        keys = context.partition_key.keys_by_dimension
        benchmark, stage = keys["benchmark"], keys["stage"]
        tables = storage.tables
        ckpt = latest_checkpoint(tables, stage)
        if ckpt is None:
            raise dg.Failure(f"no checkpoint[{stage}] yet: materialize it first")
        scored = _score(context, storage, launcher, evaluation, registry, benchmark, stage, ckpt["checkpoint_id"], ckpt["path"])
        lineage = render_explain(explain(tables, benchmark, ckpt["checkpoint_id"]))
        previous = previous_evaluated(tables, stage, benchmark, ckpt["checkpoint_id"])
        changes = render_diff(diff(tables, previous, ckpt["checkpoint_id"])) if previous else "first evaluated checkpoint of this stage"
        return dg.MaterializeResult(metadata={
            **scored,
            "beside": frame_markdown(side_by_side(tables, benchmark)),
            "lineage": dg.MetadataValue.md(f"```\n{lineage}\n```"),
            "changes_since_previous": dg.MetadataValue.md(f"```\n{changes}\n```"),
        })

    assets = [benchmark_scores]
    if evaluation.baselines:
        assets.append(_baseline_asset(evaluation, benchmarks, registry))
    return assets


def _baseline_asset(evaluation: EvaluationConfig, benchmarks: dg.StaticPartitionsDefinition, registry: dict) -> dg.AssetsDefinition:
    models = {b.name: b.model for b in evaluation.baselines}
    partitions = dg.MultiPartitionsDefinition({"benchmark": benchmarks, BASELINE_STAGE: dg.StaticPartitionsDefinition(list(models))})

    @dg.asset(
        name=BASELINE_SCORES,
        partitions_def=partitions,
        deps=[dg.AssetDep(BENCHMARK_SETS, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("benchmark")), HITS],
        **EVALUATION,
        description=(
            "An external model from evaluation.baselines (an HF directory, a hub id, a .gguf file or a packaged model) "
            "scored on one benchmark through the same lm-eval path and task folders as the checkpoints. Its rows go "
            "into `benchmark_scores` (stage = the baseline's name) beside the checkpoints'; `hare diff NAME stage2` "
            "compares it with a checkpoint item by item."
        ),
    )
    def baseline_scores(context: dg.AssetExecutionContext, storage: HareStorage, launcher: JobLauncher):
        keys = context.partition_key.keys_by_dimension
        benchmark, name = keys["benchmark"], keys[BASELINE_STAGE]
        weights = local_weights(models[name], models_dir(), context.log.info)
        tables = storage.tables
        scored = _score(context, storage, launcher, evaluation, registry, benchmark, name, baseline_id(name), weights)
        tables.write(BASELINES, pl.DataFrame([baseline_record(name, models[name], weights)], schema=CHECKPOINT_SCHEMA), name)
        return dg.MaterializeResult(metadata={**scored, "model": dg.MetadataValue.text(models[name]),
                                              "beside": frame_markdown(side_by_side(tables, benchmark))})

    return baseline_scores

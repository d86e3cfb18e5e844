"""evaluate (scores): lm-eval on each checkpoint, per benchmark, through the job launcher; every score is
kept with the checkpoint it belongs to, split into clean vs contaminated items, and explained."""

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
from hare_assets.lib.lineage import (
    SCORES,
    SAMPLES_HISTORY,
    SCORES_HISTORY,
    diff,
    explain,
    latest_checkpoint,
    previous_evaluated,
    render_diff,
    render_explain,
)
from hare_assets.lib.profile import Profile

SAMPLES = f"{SCORES}__samples"
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
        group_name="evaluate",
        kinds={"pytorch", "parquet"},
        pool="gpu",
        description=(
            "lm-eval harness scores of one checkpoint (stage) on one benchmark, with the leaderboard's shot count, through "
            "the job launcher (HF backend on CPU/GPU, vLLM on GPU); offline from the benchmark files via task folders that "
            "reuse lm-eval's own leaderboard configs. Also the score on clean items vs items with contamination hits, "
            "per-sample logs in `benchmark_scores__samples`, and the lineage from the score to the source shards."
        ),
    )
    def benchmark_scores(context: dg.AssetExecutionContext, storage: HareStorage, launcher: JobLauncher):
        keys = context.partition_key.keys_by_dimension
        benchmark, stage = keys["benchmark"], keys["stage"]
        tables = storage.tables
        ckpt = latest_checkpoint(tables, stage)
        if ckpt is None:
            raise dg.Failure(f"no checkpoint[{stage}] yet: materialize it first")
        out = storage.artifacts_dir / SCORES / benchmark / stage
        items = items_from_frame(tables.read(BENCHMARK_SETS, benchmark))
        tasks = write_tasks({benchmark: items}, registry, out / "tasks")
        config = EvalConfig(
            checkpoint=ckpt["path"], out_dir=str(out), tasks=tasks, include_path=str(out / "tasks"), backend=evaluation.backend,
            device=evaluation.device, batch_size=evaluation.batch_size, limit=evaluation.limit,
            num_threads=evaluation.num_threads, max_gen_toks=evaluation.max_gen_toks,
        )
        launcher.run(context, "hare_assets.lib.eval_job", config.to_dict())
        result = json.loads((out / "result.json").read_text())
        samples = pl.read_parquet(out / "samples.parquet")
        hits = tables.read(HITS, columns=["benchmark", "item_id"]) if tables.exists(HITS) else pl.DataFrame(
            schema={"benchmark": pl.String, "item_id": pl.String})
        contaminated = set(hits.filter(pl.col("benchmark") == benchmark).iter_rows())
        subsets = subset_scores(samples, contaminated)
        rows = score_rows(result, subsets, benchmark, stage, ckpt["checkpoint_id"])
        partition = f"{benchmark}__{stage}"
        tables.write(SAMPLES, samples.with_columns(pl.lit(stage).alias("stage"), pl.lit(ckpt["checkpoint_id"]).alias("checkpoint_id")),
                     partition)
        tables.write(SCORES_HISTORY, rows, f"{ckpt['checkpoint_id']}__{benchmark}")
        tables.write(SAMPLES_HISTORY, samples.select("split", "item_id", "score"), f"{ckpt['checkpoint_id']}__{benchmark}")
        tables.write(SCORES, rows, partition)
        main = rows.filter(pl.col("subset") == "all").head(1)
        lineage = render_explain(explain(tables, benchmark, ckpt["checkpoint_id"]))
        previous = previous_evaluated(tables, stage, benchmark, ckpt["checkpoint_id"])
        changes = render_diff(diff(tables, previous, ckpt["checkpoint_id"])) if previous else "first evaluated checkpoint of this stage"
        return dg.MaterializeResult(
            metadata={
                "checkpoint_id": dg.MetadataValue.text(ckpt["checkpoint_id"]),
                "score": dg.MetadataValue.float(float(main["value"][0]) if main.height else float("nan")),
                "scores": frame_markdown(rows.select("metric", "subset", pl.col("value").round(4), pl.col("stderr").round(4), "n")),
                "contaminated_items": dg.MetadataValue.int(len({i for _, i in contaminated})),
                "lineage": dg.MetadataValue.md(f"```\n{lineage}\n```"),
                "changes_since_previous": dg.MetadataValue.md(f"```\n{changes}\n```"),
                "lm_eval": dg.MetadataValue.text(f"{result.get('lm_eval_version')} on {result.get('device')}, {result.get('seconds', 0):.0f}s"),
            },
        )

    return [benchmark_scores]

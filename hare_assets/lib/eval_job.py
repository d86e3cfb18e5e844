"""Subprocess entry point for evaluation: `python -m hare_assets.lib.eval_job --config config.json`
(or `--config-json '{...}'`).

The counterpart of `train_job`: Dagster launches it through Pipes (`PipesSubprocessClient`, or
a K8s client on a GPU node for vLLM) so lm-eval, torch and the model live outside the Dagster
process; progress goes out as Pipes logs and the scores come back as the asset's
materialization metadata (one float per benchmark and metric, plus a table). Run by hand it
prints the table; either way `evaluation.evaluate` writes `result.json` and `samples.parquet`
under `out_dir`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from hare_assets.lib.evaluation import EvalConfig, EvalResult, evaluate, metric_label
from hare_assets.lib.job_runtime import exit_now, job_logger, pipes_session, read_config


def score_table(result: EvalResult) -> str:
    """Markdown: one line per benchmark and metric, the leaderboard's metric first and marked."""
    lines = ["| benchmark | metric | value | stderr | n |", "|---|---|---:|---:|---:|"]
    for s in result.scores:
        stderr = f"{s.stderr:.4f}" if s.stderr is not None else ""
        name = f"**{metric_label(s.metric)}**" if s.main else metric_label(s.metric)
        lines.append(f"| {s.benchmark} | {name} | {s.value:.4f} | {stderr} | {s.n} |")
    return "\n".join(lines)


def result_metadata(result: EvalResult) -> dict[str, Any]:
    """Flat floats (`<benchmark>/<metric>`, and the mean of the leaderboard metrics) for plots across runs."""
    flat: dict[str, Any] = {f"{s.benchmark}/{metric_label(s.metric)}": s.value for s in result.scores}
    main = result.main_scores()
    if main:
        flat["average"] = sum(main.values()) / len(main)
    return {**flat, "items": sum(s.n for s in result.scores if s.main), "seconds": result.seconds, "device": result.device}


def run(config: EvalConfig) -> dict[str, Any]:
    with pipes_session() as pipes:
        log = job_logger(pipes)

        result = evaluate(config, log=log)
        metadata = result_metadata(result)
        table = score_table(result)
        if pipes is not None:
            pipes.report_asset_materialization(
                metadata={
                    **metadata,
                    "scores": {"raw_value": table, "type": "md"},
                    "scores_json": {"raw_value": [asdict(s) for s in result.scores], "type": "json"},
                    "samples": {"raw_value": result.samples, "type": "path"},
                    "checkpoint": {"raw_value": result.checkpoint, "type": "path"},
                }
            )
        log(table)
        return metadata


def main(argv: list[str] | None = None) -> int:
    run(EvalConfig.from_dict(read_config(argv, __doc__.splitlines()[0], "`evaluation.EvalConfig`", ("--limit", "limit", int))))
    return 0


if __name__ == "__main__":
    exit_now(main())

"""Subprocess entry point for training: `python -m hare_assets.lib.train_job --config config.json`
(or `--config-json '{...}'`).

Dagster launches it through Pipes (`PipesSubprocessClient`, or a K8s/cloud client on a GPU
node); progress is streamed as Pipes logs and the result is reported as the asset's
materialization metadata. Run by hand (no Pipes context in the environment) it prints
progress and writes the same metadata to `<out_dir>/result.json`. Under `accelerate
launch` only rank 0 talks to Dagster.

Outputs next to the checkpoint directory: `loss_curve.png` and `result.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hare_assets.lib.job_runtime import exit_now, is_main_rank, job_logger, pipes_session, read_config
from hare_assets.lib.training import TrainConfig, TrainResult, train

MAX_CURVE_POINTS = 500


def downsample(curve: list[float], points: int = MAX_CURVE_POINTS) -> list[list[float]]:
    """[step, loss] pairs, at most `points` of them (window means), for metadata and plots."""
    if not curve:
        return []
    stride = max(1, -(-len(curve) // points))
    out = []
    for start in range(0, len(curve), stride):
        window = curve[start : start + stride]
        out.append([start + len(window), sum(window) / len(window)])
    return out


def plot_loss(curve: list[float], target: Path, resumed_from: int | None = None, title: str = "training loss") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(range(1, len(curve) + 1), curve, lw=0.6, alpha=0.4, color="tab:blue", label="step loss")
    smooth = downsample(curve, 200)
    if smooth:
        ax.plot([s for s, _ in smooth], [v for _, v in smooth], lw=1.5, color="tab:blue", label="window mean")
    if resumed_from:
        ax.axvline(resumed_from, color="tab:gray", ls="--", lw=1, label=f"resumed at {resumed_from}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = target.with_name(f".{target.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, target)
    return target


def result_metadata(result: TrainResult, plot: Path) -> dict[str, Any]:
    """What the checkpoint asset shows: flat scalars plus the (downsampled) curve as JSON."""
    return {
        "final_loss": result.final_loss,
        "tokens_per_s": result.tokens_per_s,
        "steps": result.steps,
        "tokens": result.tokens,
        "params": result.params,
        "device": result.device,
        "precision": result.precision,
        "resumed_from_step": result.resumed_from if result.resumed_from is not None else -1,
        "data_fingerprint": result.data_fingerprint,
        "loss_curve": downsample(result.loss_curve),
        "checkpoint": result.checkpoint,
        "loss_curve_png": str(plot),
        "seconds": result.seconds,
    }


def run(config: TrainConfig) -> dict[str, Any]:
    with pipes_session() as pipes:
        log = job_logger(pipes)
        result = train(config, log=log)
        if not is_main_rank():
            return {}
        out = Path(config.out_dir)
        plot = plot_loss(result.loss_curve, out / "loss_curve.png", result.resumed_from, f"{config.preset} · {out.name}")
        metadata = result_metadata(result, plot)
        (out / "result.json").write_text(json.dumps({**metadata, "loss_curve": result.loss_curve}, indent=1))
        if pipes is not None:
            pipes.report_asset_materialization(
                metadata={
                    **{k: v for k, v in metadata.items() if k not in ("loss_curve", "checkpoint", "loss_curve_png")},
                    "loss_curve": {"raw_value": metadata["loss_curve"], "type": "json"},
                    "checkpoint": {"raw_value": metadata["checkpoint"], "type": "path"},
                    "loss_curve_png": {"raw_value": metadata["loss_curve_png"], "type": "path"},
                }
            )
        log(
            f"done: {result.steps} steps, final loss {result.final_loss:.4f}, "
            f"{result.tokens_per_s:,.0f} tokens/s, checkpoint {result.checkpoint}"
        )
        return metadata


def main(argv: list[str] | None = None) -> int:
    run(TrainConfig.from_dict(read_config(argv, __doc__.splitlines()[0], "`training.TrainConfig`", ("--max-steps", "max_steps", int))))
    return 0


if __name__ == "__main__":
    exit_now(main())

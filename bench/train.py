"""Training throughput of this project's loop (`hare_assets.lib.training`) against the HF `Trainer`.

    .venv/bin/python bench/train.py [--runs 3] [--seconds 60] [--threads 2] [--sides ours,hf] [--json out.json]
    .venv/bin/python bench/train.py --preset hare-1.1b --device cuda --batch 8 [--peak-flops 989e12]

Same model (a `presets` Mistral, same seed), same packed blocks (the real corpora under
`--data`, else $HARE_REAL_DATA, else ../shared/data, read with this project's readers and
packed once by `packing.pack_documents`), same micro-batch, AdamW (fused on both sides: it is
the Trainer's default with torch >= 2.8), cosine schedule, warmup, clip 1.0, fp32 on CPU and
bf16 autocast on CUDA. Each side runs in its own subprocess with the same torch/OpenMP/MKL
thread count; runs alternate which side goes first.

The clock: each side reports a timestamp at the end of every optimizer step (our
`on_metrics` with `log_every=1`, which also syncs the loss to the host every step; a
`TrainerCallback.on_step_end` on the other side). The first `--warmup` steps are excluded
(allocation, `torch.compile`); the window then runs `--seconds` (or `--steps` steps) and
tokens/s = tokens in the window ÷ its seconds. Medians over `--runs` are printed with the
ratio ours / HF. With `--device cuda` it also prints MFU = 6·N·tokens/s ÷ `--peak-flops`
(N: parameters taking part in matmuls, i.e. all but the input embedding; H100 SXM dense
bf16 peak 989 TFLOP/s by default), and the same with the attention term 12·L·d·T added.

Sides: `ours` (defaults: fused linear-cross-entropy, no compile), `ours-compile`
(`compile: true`), `ours-unfused` (HF's loss inside our loop, to attribute the gain), `hf`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("ours", "ours-compile", "ours-unfused", "hf")
TARGET_RATIO = 1.3
LR, WARMUP_LR_STEPS, SEED = 3e-4, 10, 0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- one side, in its own process ---------------------------------------------------------------------


class _Clock:
    """Step-end timestamps; ends the process once the measuring window is complete."""

    def __init__(self, args: argparse.Namespace, tokens_per_step: int, output: Path, extra: dict):
        self.args, self.tokens_per_step, self.output, self.extra = args, tokens_per_step, output, extra
        self.times: list[float] = []
        self.losses: list[float] = []

    def tick(self, loss: float | None = None) -> None:
        self.times.append(time.perf_counter())
        if loss is not None:
            self.losses.append(loss)
        measured = len(self.times) - self.args.warmup
        if measured < 1:
            return
        elapsed = self.times[-1] - self.times[self.args.warmup - 1]
        if (self.args.steps and measured >= self.args.steps) or (not self.args.steps and elapsed >= self.args.seconds):
            self.finish(measured, elapsed)

    def finish(self, steps: int, seconds: float) -> None:
        import torch

        result = {
            **self.extra,
            "steps": steps,
            "seconds": seconds,
            "tokens_per_step": self.tokens_per_step,
            "tokens_per_s": steps * self.tokens_per_step / seconds,
            "warmup_s": self.times[self.args.warmup - 1] - self.started,
            "losses": self.losses,
            "torch_threads": torch.get_num_threads(),
        }
        self.output.write_text(json.dumps(result))
        os._exit(0)  # the window is over: skip the sides' final checkpoint writes


def run_side(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from hare_assets.lib.packing import PackedDataset
    from hare_assets.lib.presets import get_preset

    data = PackedDataset(args.packed)
    tokens_per_step = args.batch * data.seq_len
    preset = get_preset(args.preset)
    extra = {"side": args.side, "params": preset.param_count(), "seq_len": data.seq_len, "batch": args.batch}
    clock = _Clock(args, tokens_per_step, Path(args.output), extra)
    work = tempfile.mkdtemp(prefix=f"bench-train-{args.side}-")
    max_steps = args.warmup + (args.steps or 1_000_000)
    clock.started = time.perf_counter()

    if args.side == "hf":
        import numpy as np
        from transformers import MistralForCausalLM, Trainer, TrainerCallback, TrainingArguments

        from hare_assets.lib.presets import make_config

        class Blocks(torch.utils.data.Dataset):
            def __len__(self) -> int:
                return len(data)

            def __getitem__(self, i: int) -> dict:
                ids = torch.from_numpy(data[i].astype(np.int64))
                return {"input_ids": ids, "labels": ids}

        class Tick(TrainerCallback):
            def on_step_end(self, *_, **__):
                clock.tick()

        torch.manual_seed(SEED)
        model = MistralForCausalLM(make_config(args.preset))
        targs = TrainingArguments(
            output_dir=work,
            per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=1,
            max_steps=max_steps,
            learning_rate=LR,
            lr_scheduler_type="cosine",
            warmup_steps=WARMUP_LR_STEPS,
            weight_decay=0.1,
            adam_beta1=0.9,
            adam_beta2=0.95,
            max_grad_norm=1.0,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=args.device == "cpu",
            bf16=args.precision == "bf16",
            dataloader_num_workers=0,
            seed=SEED,
        )
        extra["optim"] = str(targs.optim)
        Trainer(model=model, args=targs, train_dataset=Blocks(), callbacks=[Tick()]).train()
    else:
        from hare_assets.lib.training import TrainConfig, train

        config = TrainConfig(
            data=args.packed,
            out_dir=work,
            preset=args.preset,
            seed=SEED,
            max_steps=max_steps,
            micro_batch_size=args.batch,
            lr=LR,
            warmup_steps=WARMUP_LR_STEPS,
            log_every=1,
            save_every=0,
            device=args.device,
            precision=args.precision,
            compile=args.side == "ours-compile",
            fused_loss=args.side != "ours-unfused",
            num_threads=args.threads if args.device == "cpu" else None,
        )
        train(config, on_metrics=lambda m: clock.tick(m["loss"]))
    raise RuntimeError("the side finished before its measuring window closed")


# --- the parent ------------------------------------------------------------------------------------------


def pack_corpora(data: Path, out: Path, seq_len: int) -> dict:
    """Every document of the `local-corpora` profile's sources, packed into `seq_len` blocks."""
    os.environ["HARE_REAL_DATA"] = str(data)
    sys.path.insert(0, str(ROOT))
    from hare_assets.lib.packing import pack_documents
    from hare_assets.lib.profile import load_profile
    from hare_assets.lib.readers import list_shards, read_shard

    profile = load_profile("local-corpora")

    def documents():
        for src in profile.sources:
            for shard in list_shards(src):
                for doc in read_shard(src, shard, profile.ingest.max_doc_bytes).docs:
                    yield doc["doc_id"], doc["text"]

    return pack_documents(documents(), out, seq_len).as_dict()


def measure(side: str, args: argparse.Namespace, packed: Path, workdir: Path) -> dict:
    out = workdir / f"{side}.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }
    cmd = [
        sys.executable, __file__, "--side", side, "--packed", str(packed), "--output", str(out),
        "--preset", args.preset, "--device", args.device, "--batch", str(args.batch), "--threads", str(args.threads),
        "--warmup", str(args.warmup), "--seconds", str(args.seconds), "--steps", str(args.steps),
        "--precision", args.precision,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"side {side} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    result = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - started
    return result


def model_flops_per_token(preset_name: str, seq_len: int) -> tuple[float, float]:
    """(6·N, 6·N + 12·L·d·T): N = parameters in matmuls (all but the input embedding table)."""
    from hare_assets.lib.presets import get_preset

    p = get_preset(preset_name)
    n = p.param_count() - p.vocab_size * p.hidden_size
    return 6 * n, 6 * n + 12 * p.num_hidden_layers * p.hidden_size * seq_len


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--batch", type=int, default=8, help="blocks per optimizer step (one micro-batch)")
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP/MKL threads, the same for every side")
    parser.add_argument("--warmup", type=int, default=3, help="steps excluded from the clock")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window per run")
    parser.add_argument("--steps", type=int, default=0, help="measure this many steps instead of --seconds")
    parser.add_argument("--sides", default="ours,hf")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                        help="both sides: fp32 weights and math, or bf16 autocast over fp32 weights (default: bf16 on "
                             "cuda, fp32 on cpu; bf16 on a CPU with AMX runs the matmuls on its tile units)")
    parser.add_argument("--peak-flops", type=float, default=989e12, help="peak dense bf16 FLOP/s of the GPU (H100 SXM)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--json", default=None)
    # child mode
    parser.add_argument("--side", choices=SIDES)
    parser.add_argument("--packed")
    parser.add_argument("--output")
    args = parser.parse_args()
    args.precision = args.precision or ("fp32" if args.device == "cpu" else "bf16")
    if args.side:
        return run_side(args)

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if unknown := set(sides) - set(SIDES):
        parser.error(f"unknown sides: {', '.join(sorted(unknown))}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda needs a CUDA build of torch and a GPU (none here)")
    data = Path(args.data or os.environ.get("HARE_REAL_DATA") or ROOT.parent / "shared" / "data").resolve()
    sys.path.insert(0, str(ROOT))
    from hare_assets.lib.presets import get_preset

    seq_len = get_preset(args.preset).seq_len
    with tempfile.TemporaryDirectory(prefix="hare-bench-train-") as tmp:
        workdir = Path(tmp)
        log(f"packing {data}/corpora into {seq_len}-token blocks")
        pack = pack_corpora(data, workdir / "packed", seq_len)
        log(f"packed {pack['documents']} documents, {pack['blocks']} blocks, {pack['tokens_per_s']:,.0f} tokens/s")
        runs: dict[str, list[dict]] = {s: [] for s in sides}
        for r in range(args.runs):
            order = sides if r % 2 == 0 else sides[::-1]
            for side in order:
                result = measure(side, args, workdir / "packed", workdir)
                runs[side].append(result)
                log(
                    f"run {r + 1}/{args.runs} {side:>12}: {result['tokens_per_s']:,.0f} tokens/s "
                    f"({result['steps']} steps in {result['seconds']:.1f}s, warmup {result['warmup_s']:.1f}s)"
                )

    medians = {s: statistics.median(r["tokens_per_s"] for r in runs[s]) for s in sides}
    flops6n, flops_attn = model_flops_per_token(args.preset, seq_len)
    print(f"\npreset {args.preset} ({get_preset(args.preset).param_count() / 1e6:.1f}M params), batch {args.batch} × {seq_len}, "
          f"device {args.device}, {args.precision}, {args.threads} threads, {args.runs} runs; {platform.processor() or platform.machine()}")  # fmt: skip
    print(f"{'side':>14} {'median tok/s':>14} {'runs':>30} {'model TFLOP/s':>14}" + ("  MFU(6N)  MFU(+attn)" if args.device != "cpu" else ""))
    for s in sides:
        per_run = ", ".join(f"{r['tokens_per_s']:,.0f}" for r in runs[s])
        line = f"{s:>14} {medians[s]:>14,.0f} {per_run:>30} {medians[s] * flops6n / 1e12:>14.3f}"
        if args.device != "cpu":
            line += f"  {medians[s] * flops6n / args.peak_flops:>7.1%}  {medians[s] * flops_attn / args.peak_flops:>9.1%}"
        print(line)
    ratios = {}
    if "hf" in medians:
        for s in sides:
            if s != "hf":
                ratios[s] = medians[s] / medians["hf"]
                verdict = "meets" if ratios[s] >= TARGET_RATIO else "misses"
                print(f"ratio {s} / hf: {ratios[s]:.2f}x ({verdict} the {TARGET_RATIO}x target)")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "pack": pack, "runs": runs, "medians": medians, "ratios": ratios}, indent=1)
        )


if __name__ == "__main__":
    main()

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hare_assets.lib.packing import pack_documents
from hare_assets.lib.paths import PROJECT_ROOT
from hare_assets.lib.presets import PRESETS, make_config
from hare_assets.lib.tokenizer import token_counts
from hare_assets.lib.training import DataOrder, TrainConfig, build_model, linear_cross_entropy, lr_factor, train
from hare_assets_tests.lib.test_packing import make_documents

STEPS, SAVE_EVERY = 40, 10


def micro_config(data, out, **overrides) -> TrainConfig:
    base = dict(
        data=str(data), out_dir=str(out), preset="micro", max_steps=STEPS, micro_batch_size=4, lr=3e-3,
        warmup_steps=4, log_every=5, save_every=SAVE_EVERY, num_threads=2,
    )  # fmt: skip
    return TrainConfig.from_dict({**base, **overrides})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    pack_documents(make_documents(60), out, seq_len=64)
    return out


@pytest.fixture(scope="module")
def stage1(data, tmp_path_factory):
    """One uninterrupted in-process run: the reference for the tests below."""
    config = micro_config(data, tmp_path_factory.mktemp("stage1"))
    lines: list[str] = []
    return config, train(config, log=lines.append), lines


def test_presets_shapes():
    assert 1.08e9 < PRESETS["hare-1.1b"].param_count() < 1.13e9
    config = make_config("hare-1.1b")
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (22, 2048, 32)
    assert (config.num_key_value_heads, config.intermediate_size, config.vocab_size) == (8, 5632, 32000)
    assert config.rope_parameters["rope_theta"] == 10000.0 and config.rms_norm_eps == 1e-5
    assert not config.tie_word_embeddings and config._attn_implementation == "sdpa"
    assert make_config("micro", num_hidden_layers=3).num_hidden_layers == 3
    with pytest.raises(ValueError, match="unknown model preset"):
        make_config("hare-7b")


def test_data_order_and_schedule():
    order = DataOrder(7, seed=3)
    stream = order.indices(0, 21)
    assert sorted(stream[:7]) == list(range(7)) and sorted(stream[7:14]) == list(range(7))
    assert not np.array_equal(stream[:7], stream[7:14])  # a new permutation every epoch
    assert np.array_equal(DataOrder(7, 3).indices(5, 9), stream[5:14])  # position alone decides
    assert not np.array_equal(DataOrder(7, 4).indices(0, 7), stream[:7])
    factors = [lr_factor(s, 10, 100, 0.1) for s in range(120)]
    assert factors[0] == 0.1 and factors[9] == 1.0 and math.isclose(factors[100], 0.1) and factors[119] == factors[100]
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))


def test_fused_loss_matches_cross_entropy():
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = torch.randn(100, 16, requires_grad=True)
    targets = torch.randint(0, 100, (37,))
    ours = linear_cross_entropy(hidden, weight, targets, chunk=8)
    (ours * 2).backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    reference = F.cross_entropy(hidden @ weight.t(), targets)
    (reference * 2).backward()
    assert torch.allclose(ours, reference, atol=1e-5)
    assert torch.allclose(grads[0], hidden.grad, atol=1e-6) and torch.allclose(grads[1], weight.grad, atol=1e-6)


@pytest.mark.parametrize("scale", [100.0, -100.0])
def test_fused_loss_redoes_columns_whose_exponentials_overflow_or_underflow(scale):
    """The CPU path skips the max shift; logits of ±hundreds must still give the exact loss and gradients."""
    torch.manual_seed(1)
    weight = torch.randn(50, 8).abs().requires_grad_()
    hidden = torch.randn(12, 8)
    hidden[:5] = scale * torch.rand(5, 8)  # rows 0-4: every logit ≫ 88 (overflow) or ≪ -88 (underflow)
    hidden.requires_grad_()
    targets = torch.randint(0, 50, (12,))
    ours = linear_cross_entropy(hidden, weight, targets, chunk=8)
    ours.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    reference = F.cross_entropy(hidden @ weight.t(), targets)
    reference.backward()
    assert torch.isfinite(ours) and torch.allclose(ours, reference, rtol=1e-5)
    assert torch.allclose(grads[0], hidden.grad, atol=1e-5) and torch.allclose(grads[1], weight.grad, atol=1e-5)


_ALLOC_CYCLES = """
import resource, sys, torch
from hare_assets.lib.training import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def cycle():  # three loss-chunk-sized tensors, written and freed, as a CPU step does
    blocks = [torch.ones(32000, 256) for _ in range(3)]
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    cycle()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_stops_page_faulting_the_loss_chunks_back_in():
    """Each run in a fresh process: malloc settings are process-wide and one-way."""

    def faults(mode: str) -> float:
        cmd = [sys.executable, "-c", _ALLOC_CYCLES, mode]
        return float(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=PROJECT_ROOT).stdout)

    default, kept = faults("default"), faults("keep")
    assert default > 5000  # ≥ 20 MB faulted back in per cycle by default (8,000 pages per chunk)
    assert kept < default / 3


def test_micro_model_learns_and_checkpoint_loads(stage1):
    config, result, lines = stage1
    curve = result.loss_curve
    assert len(curve) == result.steps == STEPS and result.resumed_from is None
    assert curve[0] > 10 and np.mean(curve[-5:]) < np.mean(curve[:5]) - 3  # from ln(32000) ≈ 10.4 down
    assert result.tokens == STEPS * 4 * 64 and result.tokens_per_s > 0
    assert any(line.startswith("step 40/40 loss") for line in lines)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(result.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(result.checkpoint)
    prompt = "The keeper climbed the spiral stair"
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    assert ids[0, 0].item() == 1 and ids.shape[1] == token_counts([prompt])[0] + 1  # BOS, as in packing
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 8)
    assert isinstance(tokenizer.decode(out[0], skip_special_tokens=True), str)
    info = json.loads((result.checkpoint and open(f"{result.checkpoint}/hare_training.json").read()))
    assert info["steps"] == STEPS and info["data"]["fingerprint"] == result.data_fingerprint


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if needle in line:
            return line
        assert time.monotonic() < deadline, f"no {needle!r} within {timeout}s"
    raise AssertionError(f"process ended (rc {proc.wait()}) before printing {needle!r}")


def test_killed_run_resumes_with_the_same_loss_trajectory(stage1, tmp_path):
    config, reference, _ = stage1
    resumed = micro_config(config.data, tmp_path / "run")
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(resumed.to_dict()))
    command = [sys.executable, "-m", "hare_assets.lib.train_job", "--config", str(config_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        _wait_for(proc, f"state saved at step {SAVE_EVERY} ", timeout=120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "checkpoint").exists()

    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert 0 < result["resumed_from_step"] < STEPS and "resumed from" in done.stdout
    assert result["loss_curve"] == reference.loss_curve  # bitwise: CPU, fp32, same thread count
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000


def test_resume_refuses_a_changed_config(stage1):
    config, _, _ = stage1
    changed = TrainConfig.from_dict({**config.to_dict(), "lr": 1e-3})
    with pytest.raises(ValueError, match="belongs to another run"):
        train(changed)


def test_stage2_starts_from_stage1_weights_through_dagster_pipes(stage1, tmp_path):
    import dagster as dg
    from safetensors.torch import load_file

    config, stage1_result, _ = stage1
    stage2 = micro_config(config.data, tmp_path / "stage2", init_from=stage1_result.checkpoint, max_steps=3, warmup_steps=1)
    weights = load_file(f"{stage1_result.checkpoint}/model.safetensors")
    initial = build_model(stage2).state_dict()
    assert all(torch.equal(initial[k], v) for k, v in weights.items())

    config_path = tmp_path / "stage2.json"
    config_path.write_text(json.dumps(stage2.to_dict()))

    @dg.asset
    def checkpoint(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
        command = [sys.executable, "-m", "hare_assets.lib.train_job", "--config", str(config_path)]
        return pipes.run(command=command, context=context, cwd=str(PROJECT_ROOT)).get_materialize_result()

    run = dg.materialize([checkpoint], resources={"pipes": dg.PipesSubprocessClient()})
    assert run.success
    metadata = run.asset_materializations_for_node("checkpoint")[0].metadata
    assert metadata["steps"].value == 3 and metadata["checkpoint"].value.endswith("checkpoint")
    curve = [loss for _, loss in metadata["loss_curve"].value]
    assert len(curve) == 3 and curve[0] < stage1_result.loss_curve[0] - 3  # not a fresh model
    assert math.isclose(metadata["final_loss"].value, curve[-1]) and metadata["tokens_per_s"].value > 0


# Saves a checkpoint and a training state over existing ones under a file-size limit (ulimit -f).
_LIMITED_SAVE = """
import resource, sys, torch
from pathlib import Path
from transformers import AutoModelForCausalLM
from hare_assets.lib.diskspace import OutOfSpaceError
from hare_assets.lib.training import _atomic_torch_save, save_checkpoint
run = Path(sys.argv[1])
lm = AutoModelForCausalLM.from_pretrained(run / "checkpoint")
state = torch.load(run / "state.pt", weights_only=False)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
for save in (lambda: save_checkpoint(lm, run / "checkpoint"), lambda: _atomic_torch_save(state, run / "state.pt")):
    try:
        save()
        print("saved")
    except OutOfSpaceError as exc:
        print(exc.strerror)
"""


def test_a_full_disk_during_a_checkpoint_save_is_an_error_and_keeps_the_previous_files(stage1, tmp_path):
    import shutil

    config, result, _ = stage1
    run = tmp_path / "run"
    shutil.copytree(config.out_dir, run)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    proc = subprocess.run([sys.executable, "-c", _LIMITED_SAVE, str(run)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    checkpoint_line, state_line = proc.stdout.strip().splitlines()
    weights = sum(p.stat().st_size for p in (run / "checkpoint").glob("*.safetensors"))
    for line, target in ((checkpoint_line, run / "checkpoint"), (state_line, run / "state.pt")):
        assert line.startswith(f"cannot write {target}: the file size limit (ulimit -f) was reached"), line
        assert int(line.split("needs about ")[1].split(" bytes")[0].replace(",", "")) >= 0.9 * weights
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before, "a failed save must leave the previous checkpoint and state byte for byte"

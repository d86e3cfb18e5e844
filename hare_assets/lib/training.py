"""A plain PyTorch pretraining loop for the HARE model over a `PackedDataset`, resumable bit for bit.

Why not HF `Trainer`: the loop is short, and owning it buys (a) a seeded, position-indexed
data order, so a resumed run reads exactly the blocks an uninterrupted one would;
(b) a fused linear + cross-entropy loss that never materializes the full
`tokens × 32,000` logits; (c) no per-step callback/logging machinery (`bench/train.py`).

Runtime choices: fp32 on CPU, with glibc told to keep freed memory (`keep_freed_memory`);
on CUDA bf16 autocast over fp32 master weights, TF32, fused AdamW, optional `torch.compile`
of the decoder. Under `accelerate launch` (GPUs) or torchrun (CPU, gloo) with several
processes the model is wrapped in DDP by `accelerate` and each rank reads its own slice of
every global batch: the loss trajectory is the one-process run's with the same global batch.
Attention is SDPA (`presets.make_config`).

Files under `out_dir`:

    state.pt        resumable state (model, optimizer, scheduler, step, data position,
                    RNG states, loss history), replaced atomically every `save_every` steps
    checkpoint/     HF-format model (safetensors + config + tokenizer), written at the end;
                    `AutoModelForCausalLM.from_pretrained` and vLLM load it

Resume: rerunning the same config continues from `state.pt`. On CPU in fp32 with the same
thread count the loss trajectory is bitwise identical to an uninterrupted run (tested).
On CUDA it matches to kernel-level nondeterminism (atomics in some backward kernels).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hare_assets.lib.diskspace import replace_dir, space_guard
from hare_assets.lib.failpoints import failpoint
from hare_assets.lib.packing import PackedDataset
from hare_assets.lib.presets import make_config
from hare_assets.lib.tokenizer import encoder

STATE_FILE = "state.pt"
CHECKPOINT_DIR = "checkpoint"
TRAINING_INFO = "hare_training.json"
# Fields that change the loss trajectory; a saved state only resumes a run that agrees on them.
_TRAJECTORY = (
    "preset", "model", "init_from", "seed", "micro_batch_size", "grad_accum", "lr", "min_lr_ratio",
    "warmup_steps", "schedule_steps", "weight_decay", "betas", "eps", "grad_clip", "precision", "fused_loss", "loss_chunk",
)  # fmt: skip


@dataclass
class TrainConfig:
    data: str  # a packed directory (`packing.pack_documents`)
    out_dir: str
    preset: str = "tiny"
    model: dict[str, Any] = field(default_factory=dict)  # overrides for `presets.make_config`
    init_from: str | None = None  # an HF checkpoint directory (stage 2 starts from stage 1)
    tokenizer: str | None = None  # saved with the checkpoint (`tokenizer.encoder`; None: Mistral's)
    run_id: str | None = None  # the caller's name for the checkpoint (lineage), recorded in hare_training.json
    seed: int = 0
    max_steps: int = 1000
    schedule_steps: int | None = None  # cosine horizon; None: max_steps (set it to stop early and extend later)
    micro_batch_size: int = 8  # blocks per forward, per process
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr × this
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    log_every: int = 10
    save_every: int = 100  # resumable state; 0: only at the end
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False
    fused_loss: bool = True
    loss_chunk: int | None = None  # rows of logits per chunk of the fused loss; None: 256 on CPU, 2048 on CUDA
    num_threads: int | None = None  # torch intra-op threads on CPU
    resume: bool = True

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown training config fields: {', '.join(unknown)}")
        config = cls(**raw)
        config.betas = (float(config.betas[0]), float(config.betas[1]))
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        picked = {k: getattr(self, k) for k in _TRAJECTORY}
        picked["betas"] = list(self.betas)
        picked["schedule_steps"] = self.horizon
        return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def horizon(self) -> int:
        return self.schedule_steps or self.max_steps


@dataclass
class TrainResult:
    steps: int
    tokens: int  # tokens trained on over the whole run (all processes, resumed parts included)
    final_loss: float
    tokens_per_s: float  # this process's run: training tokens ÷ loop seconds (state saves excluded)
    loss_curve: list[float]  # mean training loss of every optimizer step, from step 1
    checkpoint: str
    state: str
    resumed_from: int | None
    seconds: float
    params: int
    device: str
    precision: str
    data_fingerprint: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- schedule and data order ---------------------------------------------------------------------------


def lr_factor(step: int, warmup: int, horizon: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine to `min_ratio` at `horizon`, flat after."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class DataOrder:
    """The infinite sample stream: epoch e visits blocks in `permutation(seed, e)`.

    A sample's block depends only on (seed, position), so resuming at a position replays
    the uninterrupted order without storing it.
    """

    def __init__(self, num_blocks: int, seed: int):
        if num_blocks < 1:
            raise ValueError("the packed dataset holds no block")
        self.n, self.seed = num_blocks, seed
        self._cache: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._cache[1]

    def indices(self, position: int, count: int) -> np.ndarray:
        out = []
        while count:
            epoch, offset = divmod(position, self.n)
            take = min(count, self.n - offset)
            out.append(self.permutation(epoch)[offset : offset + take])
            position, count = position + take, count - take
        return np.concatenate(out)


# --- loss ----------------------------------------------------------------------------------------------


# A column whose sum of unshifted exponentials lies in this range had no logit overflow (> 88) and
# lost nothing that matters to underflow (its largest logit is > -69: anything that underflowed is
# < e^-18 of it, under fp32's resolution); other columns are redone with the max subtracted.
_UNSHIFTED_RANGE = (1e-30, 1e30)


def _exp_columns_shifted(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`exp(logits - column max)` in place, column sums and the column maxima."""
    top = logits.amax(dim=0)
    probs = logits.sub_(top).exp_()
    return probs, probs.sum(dim=0), top


def _exp_columns_unshifted(
    logits: torch.Tensor, recompute: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`exp(logits)` in place, column sums and per-column shifts (0, or the max where redone).

    Skipping the max saves two of the five passes over a CPU chunk (the column max is the
    slowest of them); `recompute(columns)` gives those columns' logits again for the rare
    column outside `_UNSHIFTED_RANGE`. On CUDA the passes are cheap and the check would cost
    a host sync per chunk, so the loss subtracts the max there.
    """
    probs = logits.exp_()
    norm = probs.sum(dim=0)
    top = torch.zeros_like(norm)
    low, high = _UNSHIFTED_RANGE
    redo = (~((norm > low) & (norm < high))).nonzero().squeeze(1)  # NaN/inf fail the test too
    if redo.numel():
        probs[:, redo], norm[redo], top[redo] = _exp_columns_shifted(recompute(redo))
    return probs, norm, top


class _LinearCrossEntropy(torch.autograd.Function):
    """mean CE(hidden @ weightᵀ, targets), computed in row chunks with gradients made in the forward.

    The `N × vocab` logits exist one chunk at a time, which saves memory on GPU and memory
    traffic on CPU (a 256-row chunk of fp32 logits stays in the large caches). Each chunk is
    held transposed, `vocab × rows` (`weight @ hᵀ`: the GEMM that runs fastest with a 32k-row
    weight, and the softmax's reductions then run down contiguous rows). Per chunk: one matmul
    in `compute_dtype` (bf16 under autocast), the softmax and the loss in fp32 in place (exp,
    sum, divide: the exponentials are computed once; the column max is subtracted first on
    CUDA, and on CPU only where a column needs it, `_exp_columns_unshifted`), and the two
    gradient matmuls; the 1/N of the mean is applied to the small results in `backward`.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int, compute_dtype: torch.dtype):  # type: ignore[override]
        n = hidden.shape[0]
        shift_free = hidden.device.type == "cpu"
        with torch.autocast(hidden.device.type, enabled=False):
            h = hidden.to(compute_dtype)
            w = weight.to(compute_dtype)
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, n, chunk):
                hc, tc = h[start : start + chunk], targets[start : start + chunk]
                cols = torch.arange(hc.shape[0], device=hc.device)
                logits = (w @ hc.t()).float()  # vocab × rows
                picked = logits[tc, cols]
                if shift_free:
                    probs, norm, top = _exp_columns_unshifted(logits, lambda redo: (w @ hc[redo].t()).float())
                else:
                    probs, norm, top = _exp_columns_shifted(logits)
                total += (top + norm.log() - picked).sum()
                # N × d(mean loss)/d(logits) = softmax - onehot, in place in the logits buffer
                probs.div_(norm)
                probs[tc, cols] -= 1.0
                g = probs.to(compute_dtype)
                grad_h[start : start + chunk] = g.t() @ w
                if compute_dtype == torch.float32:
                    grad_w.addmm_(g, hc)
                else:
                    grad_w += (g @ hc).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes, ctx.n = (hidden.dtype, weight.dtype), n
        return total / n

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.n
        return (grad_h * scale).to(ctx.dtypes[0]), (grad_w * scale).to(ctx.dtypes[1]), None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int = 256, compute_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Mean next-token loss from final hidden states `(N, H)`, the LM head weight `(V, H)` and targets `(N,)`."""
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk, compute_dtype or hidden.dtype)


class CausalLMLoss(nn.Module):
    """Wraps an HF causal LM so that `forward(input_ids)` returns the mean next-token loss.

    One module holding the whole loss is what DDP needs to see for gradient sync.
    """

    def __init__(self, lm: nn.Module, fused: bool = True, compute_dtype: torch.dtype = torch.float32, chunk: int = 256):
        super().__init__()
        self.lm, self.fused, self.compute_dtype, self.chunk = lm, fused, compute_dtype, chunk

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return self.lm(input_ids=input_ids, labels=input_ids).loss
        hidden = self.lm.model(input_ids=input_ids).last_hidden_state[:, :-1]
        return linear_cross_entropy(
            hidden.reshape(-1, hidden.shape[-1]),
            self.lm.lm_head.weight,
            input_ids[:, 1:].reshape(-1),
            self.chunk,
            self.compute_dtype,
        )


# --- model, checkpoints, state -------------------------------------------------------------------------


def build_model(config: TrainConfig) -> nn.Module:
    """Stage 1: a fresh model from the preset, seeded. Stage 2 (`init_from`): stage 1's weights."""
    from transformers import AutoModelForCausalLM, MistralForCausalLM

    if config.init_from:
        return AutoModelForCausalLM.from_pretrained(
            config.init_from, dtype=torch.float32, attn_implementation=config.model.get("attn_implementation", "sdpa")
        )
    torch.manual_seed(config.seed)
    return MistralForCausalLM(make_config(config.preset, **config.model)).float()


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) state: what a save of it needs on disk, give or take headers."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def _atomic_torch_save(payload: Any, target: Path) -> None:
    """Save through a Python file (so a full disk surfaces as OSError), fsync, then rename into place."""
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with space_guard(target, tensor_bytes(payload)), open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(lm: nn.Module, target: str | Path, info: dict[str, Any] | None = None, state_dict: dict | None = None,
                    tokenizer: str | None = None) -> Path:
    """HF-format checkpoint (safetensors, config, generation config, tokenizer), atomically.

    Mistral's SentencePiece tokenizer gets `add_bos_token: true` so that evaluation tokenizes like
    packing did (`<s>` before every document); an HF tokenizer is saved as it is.
    `hare_training.json` records how the weights were made.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with space_guard(target, tensor_bytes(state_dict if state_dict is not None else lm.state_dict())):
            lm.save_pretrained(tmp, state_dict=state_dict)
            enc = encoder(tokenizer)
            enc.save(tmp)
            if enc.sentencepiece:
                config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                          "unk_token": "<unk>", "model_max_length": lm.config.max_position_embeddings}
                (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
            (tmp / TRAINING_INFO).write_text(json.dumps(info or {}, indent=1, default=str))
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- runtime -------------------------------------------------------------------------------------------


@dataclass
class _Runtime:
    """Single process, or several under `accelerate launch` / torchrun (DDP via accelerate)."""

    device: torch.device
    bf16: bool
    accelerator: Any = None

    @property
    def rank(self) -> int:
        return self.accelerator.process_index if self.accelerator else 0

    @property
    def world(self) -> int:
        return self.accelerator.num_processes if self.accelerator else 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def no_sync(self, model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        if self.accelerator is None or sync:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(model)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(values, "mean") if self.accelerator else values

    def barrier(self) -> None:
        if self.accelerator:
            self.accelerator.wait_for_everyone()


def _runtime(config: TrainConfig) -> _Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = None
    if world > 1:
        from accelerate import Accelerator

        cpu = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
        accelerator = Accelerator(cpu=cpu)  # precision handled by our autocast
        if accelerator.num_processes != world:
            raise RuntimeError(
                f"launched as {world} processes but accelerate set up {accelerator.num_processes} "
                f"(device {config.device!r}): each would train alone; check the device and the GPUs visible"
            )
        device = accelerator.device
    elif config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if config.precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {config.precision!r}")
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        keep_freed_memory()
    return _Runtime(device, bf16, accelerator)


# glibc `mallopt` parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit Linux
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX = -1, -3, 32 << 20


def keep_freed_memory() -> bool:
    """Have glibc keep freed blocks of up to 32 MiB in the heap rather than hand them back to the OS.

    A CPU step allocates and frees tensors of ~32 MB (a `tiny` loss chunk is 32,000 × 256
    fp32); by default glibc unmaps each one on free and the next step page-faults it back in:
    ~31,000 faults and ~50 ms of kernel time per `tiny` step, ~5 % of it. (PyTorch's CPU
    tuning guide gets the same from jemalloc or tcmalloc.) Process-wide, as malloc is; the
    price is that the process keeps its peak heap. False where libc is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def _optimizer(lm: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms (1-D weights). Fused kernel on CUDA and CPU (fp32)."""
    decay = [p for p in lm.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in lm.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        fused=device.type in ("cuda", "cpu"),
    )


# --- the loop ------------------------------------------------------------------------------------------


def _emit(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


def train(
    config: TrainConfig,
    log: Callable[[str], None] | None = None,
    on_metrics: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train (or resume) `config`; returns the run's metrics and where its checkpoint is.

    `log` gets human-readable lines (progress, saves, resume); `on_metrics` gets one dict
    per logging window: step, loss, lr, grad_norm, tokens_per_s, tokens. Only the main
    process calls them and writes files.
    """
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        return _train(config, log, on_metrics, started)
    finally:
        torch.set_num_threads(previous_threads)


def _train(config, log, on_metrics, started) -> TrainResult:
    rt = _runtime(config)
    say: Callable[[str], None] = (lambda m: _emit(log, m)) if rt.is_main else (lambda m: None)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = PackedDataset(config.data)
    order = DataOrder(len(data), config.seed)

    lm = build_model(config)
    if data.seq_len > lm.config.max_position_embeddings:
        raise ValueError(f"blocks of {data.seq_len} tokens exceed the model's {lm.config.max_position_embeddings} positions")
    if data.header["vocab_size"] > lm.config.vocab_size:
        raise ValueError(f"data vocab {data.header['vocab_size']} exceeds the model's {lm.config.vocab_size}")
    lm.to(rt.device)
    params = sum(p.numel() for p in lm.parameters())
    optimizer = _optimizer(lm, config, rt.device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, config.warmup_steps, config.horizon, config.min_lr_ratio)
    )

    step, position, loss_curve, resumed_from = 0, 0, [], None
    state_path = out / STATE_FILE
    if config.resume and state_path.exists():
        state = torch.load(state_path, map_location=rt.device, weights_only=False)
        if state["fingerprint"] != config.fingerprint() or state["data"] != data.fingerprint():
            raise ValueError(
                f"{state_path} belongs to another run (config or data changed); "
                "delete it, use another out_dir, or set resume: false"
            )
        lm.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, position, loss_curve = state["step"], state["position"], list(state["loss_curve"])
        _set_rng_state(state["rng"])
        resumed_from = step
        say(f"resumed from {state_path} at step {step} (data position {position})")
        del state

    loss_model: nn.Module = CausalLMLoss(
        lm, fused=config.fused_loss, compute_dtype=torch.bfloat16 if rt.bf16 else torch.float32,
        chunk=config.loss_chunk or (2048 if rt.device.type == "cuda" else 256),
    )
    if config.compile:
        lm.model.compile()  # in place: state-dict keys (and checkpoints) stay unchanged
    if rt.accelerator is not None:
        loss_model = rt.accelerator.prepare_model(loss_model)

    per_micro = config.micro_batch_size * rt.world
    tokens_per_step = per_micro * config.grad_accum * data.seq_len
    say(
        f"training {params / 1e6:.1f}M params on {rt.device} ({'bf16' if rt.bf16 else 'fp32'}, "
        f"{rt.world} process(es)), {len(data)} blocks × {data.seq_len} tokens, "
        f"{tokens_per_step} tokens/step, steps {step}→{config.max_steps}"
    )

    def save_state() -> None:
        rt.barrier()
        if rt.is_main:
            _atomic_torch_save(
                {
                    "model": lm.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "position": position,
                    "loss_curve": loss_curve,
                    "rng": _rng_state(),
                    "fingerprint": config.fingerprint(),
                    "data": data.fingerprint(),
                    "config": config.to_dict(),
                },
                state_path,
            )
            say(f"state saved at step {step} -> {state_path}")
        rt.barrier()

    def batches() -> Iterator[torch.Tensor]:
        nonlocal position
        while True:
            idx = order.indices(position + rt.rank * config.micro_batch_size, config.micro_batch_size)
            x = torch.from_numpy(data.batch(idx))
            if rt.device.type == "cuda":
                x = x.pin_memory().to(rt.device, non_blocking=True)
            position += per_micro
            yield x

    loss_model.train()
    feed = batches()
    pending: list[torch.Tensor] = []  # step losses not yet synchronised to the host
    save_seconds = 0.0
    loop_start = window_start = time.perf_counter()
    first_step, window_step = step, step
    grad_norm = torch.zeros(())
    while step < config.max_steps:
        step_loss = torch.zeros((), device=rt.device)
        for micro in range(config.grad_accum):
            x = next(feed)
            with rt.no_sync(loss_model, sync=micro == config.grad_accum - 1), rt.autocast():
                loss = loss_model(x)
            (loss / config.grad_accum).backward()
            step_loss += loss.detach()
        if config.grad_clip:
            grad_norm = torch.nn.utils.clip_grad_norm_(lm.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        pending.append(step_loss / config.grad_accum)

        last = step == config.max_steps
        if step % config.log_every == 0 or last or (config.save_every and step % config.save_every == 0):
            values = rt.mean(torch.stack(pending)).tolist()  # one host sync per window
            loss_curve.extend(float(v) for v in values)
            pending.clear()
            if step % config.log_every == 0 or last:
                now = time.perf_counter()
                rate = (step - window_step) * tokens_per_step / max(now - window_start, 1e-9)
                metrics = {
                    "step": step,
                    "loss": loss_curve[-1],
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": rate,
                    "tokens": step * tokens_per_step,
                }
                say(
                    f"step {step}/{config.max_steps} loss {metrics['loss']:.4f} lr {metrics['lr']:.2e} "
                    f"grad_norm {metrics['grad_norm']:.3f} {rate:,.0f} tokens/s"
                )
                if on_metrics is not None and rt.is_main:
                    on_metrics(metrics)
                window_start, window_step = time.perf_counter(), step
        if (config.save_every and step % config.save_every == 0) or last:
            t = time.perf_counter()
            save_state()
            save_seconds += time.perf_counter() - t
            failpoint("training")
            window_start += time.perf_counter() - t
    loop_seconds = time.perf_counter() - loop_start - save_seconds

    checkpoint = out / CHECKPOINT_DIR
    trained = (step - first_step) * tokens_per_step
    result = TrainResult(
        steps=step,
        tokens=step * tokens_per_step,
        final_loss=loss_curve[-1] if loss_curve else float("nan"),
        tokens_per_s=trained / loop_seconds if trained else 0.0,
        loss_curve=loss_curve,
        checkpoint=str(checkpoint),
        state=str(state_path),
        resumed_from=resumed_from,
        seconds=0.0,
        params=params,
        device=str(rt.device),
        precision="bf16" if rt.bf16 else "fp32",
        data_fingerprint=data.fingerprint(),
    )
    rt.barrier()
    if rt.is_main:
        info = {
            "run_id": config.run_id,
            "config": config.to_dict(),
            "data": {"path": str(Path(config.data).resolve()), "fingerprint": data.fingerprint(), "seq_len": data.seq_len},
            "init_from": config.init_from,
            "steps": step,
            "tokens": result.tokens,
            "final_loss": result.final_loss,
        }
        save_checkpoint(lm, checkpoint, info, tokenizer=config.tokenizer)
        say(f"checkpoint saved -> {checkpoint}")
    rt.barrier()
    result.seconds = time.perf_counter() - started
    return result

"""Open LLM Leaderboard v1 evaluation through lm-eval, offline from whatever the registry loaded.

HARE reports the leaderboard's six benchmarks (MMLU 5-shot, ARC-C 25, TruthfulQA mc2 0,
Winogrande 5, HellaSwag 10, GSM8K 5). Offline, lm-eval cannot download its datasets, so
`write_tasks` turns normalised `BenchmarkItem`s into an lm-eval task folder: one JSONL file per
split in each benchmark's canonical HF record shape, and task YAMLs that are lm-eval's *own*
leaderboard configs (prompt templates, choices, targets, metrics, filters, `!function` hooks,
MMLU's per-subject description and first-n dev shots), loaded from the installed harness with
only the dataset, splits and shot count replaced. Prompts therefore follow the harness and
cannot drift from it; the tests compare them with the native tasks on the same records.

Splits: each benchmark is scored on the leaderboard's split. Few-shot examples come from
train, else dev, else validation (the first one loaded that is not the evaluation split); when
none is available (the local ARC, HellaSwag and Winogrande hold one split each) they come from
the evaluation split itself, and lm-eval's sampler leaves out the document being scored
(`fewshot_split == test_split`). Sampling is seeded (`EvalConfig.seed`).

An `EvalTask` may instead name a registered lm-eval task (`arc_challenge`, `mmlu`, ...) that
reads the hub (`native_tasks`); its per-sample rows get the same item ids as the registry's hub
loader gives.

Every JSONL record carries our `item_id` and `split`, so `samples.parquet` joins back to the
benchmark items and to contamination hits (`subset_scores`: clean vs contaminated items).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import string
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import FunctionType
from typing import Any

import polars as pl
import yaml

from hare_assets.lib.benchmarks import BenchmarkItem, BenchmarkSpec, items_from_records, load_registry
from hare_assets.lib.diskspace import replace_dir
from hare_assets.lib.failpoints import failpoint

TASK_PREFIX = "hare_"
SAMPLES_FILE = "samples.parquet"
RESULT_FILE = "result.json"
FEWSHOT_SPLITS = ("train", "dev", "validation")  # preference order for few-shot examples


# --- formats: the leaderboard task each benchmark mirrors ----------------------------------------


def _arc(item: BenchmarkItem) -> dict[str, Any]:
    labels = list(string.ascii_uppercase[: len(item.choices)])  # the prompt never shows them
    return {"question": item.question, "choices": {"text": list(item.choices), "label": labels}, "answerKey": labels[item.answer]}


def _hellaswag(item: BenchmarkItem) -> dict[str, Any]:
    # lm-eval's process_docs builds "activity_label: ctx_a ctx_b.capitalize()". Items keep ctx = ctx_a + " " + ctx_b
    # (the local file never had the parts), so the one difference from the harness: ctx_b's first letter stays as is.
    return {"activity_label": item.question, "ctx_a": item.context, "ctx_b": "", "endings": list(item.choices), "label": str(item.answer)}


def _mmlu(item: BenchmarkItem) -> dict[str, Any]:
    return {"question": item.question, "subject": mmlu_subject(item), "choices": list(item.choices), "answer": item.answer}


def _truthfulqa(item: BenchmarkItem) -> dict[str, Any]:
    if len(item.flags) != len(item.choices):
        raise ValueError(
            f"{item.item_id}: no true/false flag per choice (a benchmark_sets table written before flags were "
            f"kept?): materialize benchmark_sets[{item.benchmark}] again"
        )
    return {"question": item.question, "mc2_targets": {"choices": list(item.choices), "labels": list(item.flags)}}


def _winogrande(item: BenchmarkItem) -> dict[str, Any]:
    option1, option2 = item.choices
    return {"sentence": item.question, "option1": option1, "option2": option2, "answer": str(item.answer + 1)}


def _gsm8k(item: BenchmarkItem) -> dict[str, Any]:
    return {"question": item.question, "answer": item.answer}


@dataclass(frozen=True)
class Format:
    native: str  # lm-eval's task YAML, relative to lm_eval/tasks ({subject} for MMLU)
    split: str  # the split the leaderboard scores
    metric: str  # the leaderboard's metric, as lm-eval keys it
    record: Callable[[BenchmarkItem], dict[str, Any]]  # the canonical HF record the native YAML reads


# Keyed by the registry's `lm_eval_task`; demo_mc is prompted like ARC.
FORMATS: dict[str, Format] = {
    "arc_challenge": Format("arc/arc_challenge.yaml", "test", "acc_norm,none", _arc),
    "hellaswag": Format("hellaswag/hellaswag.yaml", "validation", "acc_norm,none", _hellaswag),
    "mmlu": Format("mmlu/default/mmlu_{subject}.yaml", "test", "acc,none", _mmlu),
    "truthfulqa_mc2": Format("truthfulqa/truthfulqa_mc2.yaml", "validation", "acc,none", _truthfulqa),
    "winogrande": Format("winogrande/default.yaml", "validation", "acc,none", _winogrande),
    "gsm8k": Format("gsm8k/gsm8k.yaml", "test", "exact_match,strict-match", _gsm8k),
    "demo_mc": Format("arc/arc_challenge.yaml", "test", "acc,none", _arc),
}


def format_of(spec: BenchmarkSpec) -> Format:
    try:
        return FORMATS[spec.lm_eval_task]
    except KeyError:
        raise ValueError(f"benchmark {spec.name!r}: no evaluation format for lm_eval_task {spec.lm_eval_task!r}") from None


def mmlu_subject(item: BenchmarkItem) -> str:
    """MMLU items have no source id: the registry's fallback id `mmlu/<split>/<subject>/<row>` names the subject."""
    parts = item.item_id.split("/")
    if len(parts) != 4:
        raise ValueError(f"MMLU item id {item.item_id!r} does not name its subject (<benchmark>/<split>/<subject>/<row>)")
    return parts[2]


# --- task folders --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalTask:
    benchmark: str
    task: str  # an lm-eval task or group name: ours (`hare_<benchmark>`, under include_path) or a registered one
    num_fewshot: int
    split: str
    fewshot_split: str | None  # None: zero-shot, or the native task's own choice
    metric: str  # the leaderboard's metric (lm-eval key): `score` in samples, `main` in scores


class _FunctionRef(str):
    """A `!function module.name` reference in a written YAML (lm-eval imports dotted paths)."""


class _TaskDumper(yaml.SafeDumper):
    pass


_TaskDumper.add_representer(_FunctionRef, lambda dumper, ref: dumper.represent_scalar("!function", str(ref)))
_TaskDumper.add_representer(  # prompts as literal blocks, readable as in lm-eval's own YAMLs
    str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)
)


def _lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def native_config(relative: str) -> dict[str, Any]:
    """lm-eval's own task config (includes merged, `!function` hooks as importable references)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(_lm_eval_tasks_dir() / relative, resolve_func=True)
    return {k: _FunctionRef(f"{v.__module__}.{v.__name__}") if isinstance(v, FunctionType) else v for k, v in cfg.items()}


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def _task_config(
    native: dict[str, Any], name: str, files: dict[str, Path], split: str, fewshot_split: str | None, shots: int, cache: Path
) -> dict[str, Any]:
    cfg = {k: v for k, v in native.items() if k not in ("tag", "group", "dataset_name", "training_split", "validation_split")}
    cfg.update(
        task=name,
        dataset_path="json",
        dataset_kwargs={"data_files": {s: str(p) for s, p in files.items()}, "cache_dir": str(cache)},
        test_split=split,  # always test_split: lm-eval leaves the scored doc out of same-split shots only then
        fewshot_split=fewshot_split,
        num_fewshot=shots,
    )
    return cfg


def _dump(path: Path, cfg: dict[str, Any]) -> None:
    path.write_text(yaml.dump(cfg, Dumper=_TaskDumper, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")


def pick_fewshot_split(splits: Iterable[str], split: str) -> str:
    present = set(splits)
    return next((s for s in FEWSHOT_SPLITS if s in present and s != split), split)


def write_tasks(
    items_by_benchmark: Mapping[str, Sequence[BenchmarkItem]],
    specs: Mapping[str, BenchmarkSpec],
    out_dir: str | os.PathLike[str],
) -> list[EvalTask]:
    """An lm-eval task folder (`include_path`) for the given items; one `EvalTask` per benchmark.

    Each benchmark's subfolder is replaced whole, so a rerun never leaves stale tasks behind.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tasks = []
    for name, items in items_by_benchmark.items():
        spec = specs[name]
        fmt = format_of(spec)
        labelled = [it for it in items if it.answer is not None]
        splits = {it.split for it in labelled}
        if fmt.split not in splits:
            raise ValueError(f"benchmark {name!r}: no labelled {fmt.split!r} items to score (have {sorted(splits)})")
        fewshot = pick_fewshot_split(splits, fmt.split) if spec.num_fewshot else None

        def record(item: BenchmarkItem) -> dict[str, Any]:
            return {"item_id": item.item_id, "split": item.split, **fmt.record(item)}

        final = out / name
        tmp = out / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            used = [s for s in dict.fromkeys([fmt.split, fewshot]) if s]
            task = f"{TASK_PREFIX}{name}"
            if spec.lm_eval_task == "mmlu":
                _write_mmlu(tmp, final, task, labelled, used, fmt, fewshot, spec.num_fewshot, record)
            else:
                for s in used:
                    _write_jsonl(tmp / "data" / f"{s}.jsonl", (record(it) for it in labelled if it.split == s))
                files = {s: final / "data" / f"{s}.jsonl" for s in used}  # where they will be once swapped in
                cfg = _task_config(native_config(fmt.native), task, files, fmt.split, fewshot, spec.num_fewshot, final / ".cache")
                _dump(tmp / f"{task}.yaml", cfg)
            replace_dir(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        tasks.append(EvalTask(name, task, spec.num_fewshot, fmt.split, fewshot, fmt.metric))
    return tasks


def _write_mmlu(
    tmp: Path,
    final: Path,
    group: str,
    items: list[BenchmarkItem],
    used: list[str],
    fmt: Format,
    fewshot: str | None,
    shots: int,
    record: Callable[[BenchmarkItem], dict[str, Any]],
) -> None:
    """One task per subject (its description, its own dev shots, first-n) and a size-weighted group, as lm-eval's `mmlu`."""
    by_subject: dict[str, list[BenchmarkItem]] = {}
    for item in items:
        by_subject.setdefault(mmlu_subject(item), []).append(item)
    subjects = sorted(subject for subject, group_items in by_subject.items() if any(it.split == fmt.split for it in group_items))
    for subject in subjects:
        files = {}
        for s in used:
            _write_jsonl(tmp / "data" / s / f"{subject}.jsonl", (record(it) for it in by_subject[subject] if it.split == s))
            files[s] = final / "data" / s / f"{subject}.jsonl"
        native = native_config(fmt.native.format(subject=subject))
        cfg = _task_config(native, f"{group}_{subject}", files, fmt.split, fewshot, shots, final / ".cache")
        _dump(tmp / f"{group}_{subject}.yaml", cfg)
    native_group = native_config("mmlu/default/_mmlu.yaml")
    _dump(
        tmp / f"{group}.yaml",
        {
            "group": group,
            "task": [f"{group}_{s}" for s in subjects],
            "aggregate_metric_list": native_group["aggregate_metric_list"],
            "metadata": native_group["metadata"],
        },
    )


def native_tasks(specs: Mapping[str, BenchmarkSpec], names: Iterable[str] | None = None) -> list[EvalTask]:
    """The registered lm-eval tasks themselves (they read the hub): for machines with a hub or HF cache."""
    out = []
    for name in names or specs:
        spec = specs[name]
        if spec.hf is None:
            raise ValueError(f"benchmark {name!r} has no hub dataset, so no native lm-eval task; use write_tasks")
        fmt = format_of(spec)
        out.append(EvalTask(name, spec.lm_eval_task, spec.num_fewshot, fmt.split, None, fmt.metric))
    return out


# --- running lm-eval -----------------------------------------------------------------------------


@dataclass
class EvalConfig:
    checkpoint: str  # an HF checkpoint directory (training.save_checkpoint) or hub id
    out_dir: str
    tasks: list[EvalTask]
    include_path: str | None = None  # the folder write_tasks wrote
    backend: str = "hf"  # hf | vllm (the `gpu` extra)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16
    batch_size: int | str = 8  # or "auto"
    limit: int | None = None  # documents per lm-eval task (MMLU: per subject), for smoke runs
    seed: int = 1234  # lm-eval's default: few-shot sampling, python, numpy and torch
    num_threads: int | None = None  # torch intra-op threads on CPU
    max_gen_toks: int | None = None  # generation cap (lm-eval: 256); tiny-context models need less
    model_args: dict[str, Any] = field(default_factory=dict)  # extra backend arguments (e.g. vLLM's max_model_len)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown evaluation config fields: {', '.join(unknown)}")
        config = cls(**raw)
        config.tasks = [t if isinstance(t, EvalTask) else EvalTask(**t) for t in config.tasks]
        if config.backend not in ("hf", "vllm"):
            raise ValueError(f"backend must be hf or vllm, not {config.backend!r}")
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Score:
    benchmark: str
    metric: str  # lm-eval's key, e.g. "acc_norm,none" or "exact_match,strict-match"
    value: float
    stderr: float | None
    n: int  # documents scored
    main: bool  # the leaderboard's metric for this benchmark


@dataclass
class EvalResult:
    scores: list[Score]
    samples: str  # path of samples.parquet
    checkpoint: str
    backend: str
    device: str
    seconds: float
    lm_eval_version: str

    def main_scores(self) -> dict[str, float]:
        return {s.benchmark: s.value for s in self.scores if s.main}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "main": self.main_scores()}


def metric_label(metric: str) -> str:
    """A display name: `acc_norm,none` -> `acc_norm`, `exact_match,strict-match` -> `exact_match.strict-match`."""
    name, _, filt = metric.partition(",")
    return name if filt in ("", "none") else f"{name}.{filt}"


def _runtime(config: EvalConfig) -> tuple[str, str]:
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = config.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def _load_tasks(config: EvalConfig) -> tuple[Any, list[Any], dict[str, EvalTask]]:
    """The TaskManager, the task/group objects to run (shots set per leaf), and leaf task -> EvalTask.

    lm-eval's own task index (~8 s to build) is read only when a task is not in include_path.
    """
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=config.include_path, include_defaults=False) if config.include_path else None
    if manager is None or any(t.task not in manager.all_tasks for t in config.tasks):
        manager = TaskManager(include_path=config.include_path)
    objects, leaves = [], {}
    for t in config.tasks:
        loaded = manager.load([t.task])
        for name, task in loaded["tasks"].items():
            task.set_config(key="num_fewshot", value=t.num_fewshot)
            leaves[name] = t
        objects.append(loaded["groups"].get(t.task) or loaded["tasks"][t.task])
    return manager, objects, leaves


def evaluate(config: EvalConfig, log: Callable[[str], None] | None = None) -> EvalResult:
    """Run lm-eval on `config.tasks`; scores per benchmark, per-sample rows in `<out_dir>/samples.parquet`."""
    import lm_eval
    import torch

    say = log or (lambda message: None)
    started = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device, dtype = _runtime(config)
    previous_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        manager, objects, leaves = _load_tasks(config)
        say(f"evaluating {config.checkpoint} ({config.backend}, {device}, {dtype}) on {len(leaves)} lm-eval task(s)")
        model_args = {"pretrained": str(config.checkpoint), "dtype": dtype, "add_bos_token": True, **config.model_args}
        if config.backend == "vllm":
            model_args.setdefault("seed", config.seed)
        failpoint("evaluation")
        raw = lm_eval.simple_evaluate(
            model=config.backend,
            model_args=model_args,
            tasks=objects,
            task_manager=manager,
            batch_size=config.batch_size,
            device=device if config.backend == "hf" else None,
            limit=config.limit,
            log_samples=True,
            gen_kwargs={"max_gen_toks": config.max_gen_toks} if config.max_gen_toks else None,
            random_seed=config.seed,
            numpy_random_seed=config.seed,
            torch_random_seed=config.seed,
            fewshot_random_seed=config.seed,
        )
    finally:
        torch.set_num_threads(previous_threads)
    samples = sample_rows(raw["samples"], leaves)
    say(f"scored {samples.height} documents in {time.perf_counter() - started:.0f}s")
    samples_path = out / SAMPLES_FILE
    tmp = samples_path.with_name(f".{SAMPLES_FILE}.tmp-{uuid.uuid4().hex[:8]}")
    samples.write_parquet(tmp)
    os.replace(tmp, samples_path)
    counts = dict(samples.group_by("benchmark").len().iter_rows())
    scores = [s for t in config.tasks for s in _scores(raw["results"].get(t.task, {}), t, counts.get(t.benchmark, 0))]
    result = EvalResult(
        scores=scores,
        samples=str(samples_path),
        checkpoint=str(config.checkpoint),
        backend=config.backend,
        device=device,
        seconds=time.perf_counter() - started,
        lm_eval_version=raw.get("lm_eval_version", ""),
    )
    tmp = out / f".{RESULT_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({**result.as_dict(), "config": config.to_dict()}, indent=1))
    os.replace(tmp, out / RESULT_FILE)
    return result


def _scores(results: dict[str, Any], task: EvalTask, n: int) -> list[Score]:
    out = []
    for key, value in results.items():
        name, sep, filt = key.partition(",")
        if not sep or name.endswith("_stderr") or not isinstance(value, (int, float)):
            continue
        stderr = results.get(f"{name}_stderr,{filt}")
        stderr = float(stderr) if isinstance(stderr, (int, float)) and math.isfinite(stderr) else None
        out.append(Score(task.benchmark, key, float(value), stderr, n, key == task.metric))
    return sorted(out, key=lambda s: (not s.main, s.metric))


_SAMPLE_SCHEMA = {
    "benchmark": pl.String,
    "task": pl.String,
    "split": pl.String,
    "item_id": pl.String,
    "doc_index": pl.Int64,
    "metric": pl.String,
    "score": pl.Float64,
    "target": pl.String,
    "prediction": pl.String,
    "response": pl.String,
    "loglikelihoods": pl.List(pl.Float64),
}


def sample_rows(samples: Mapping[str, list[dict[str, Any]]], leaves: Mapping[str, EvalTask]) -> pl.DataFrame:
    """One row per scored document: ids, the main metric as `score`, every `metric,filter` value as a column,
    lm-eval's logged target (the gold choice index; Winogrande: the scored continuation; mc2: 0, as the
    harness declares it), the prediction (the highest log-likelihood choice, i.e. acc's pick, with every
    choice's log-likelihood; or the filtered generation) and the raw generation."""
    rows = []
    for task_name, logged in samples.items():
        t = leaves[task_name]
        main, main_filter = t.metric, t.metric.partition(",")[2]
        by_doc: dict[int, list[dict[str, Any]]] = {}
        for s in logged:
            by_doc.setdefault(int(s["doc_id"]), []).append(s)
        docs = [entries[0]["doc"] for _, entries in sorted(by_doc.items())]
        ours = all("item_id" in d for d in docs)  # registered tasks' hub records have their own `split` fields
        ids = [d["item_id"] for d in docs] if ours else _native_ids(t, docs)
        for (doc_id, entries), item_id in zip(sorted(by_doc.items()), ids):
            row: dict[str, Any] = {
                "benchmark": t.benchmark,
                "task": task_name,
                "split": entries[0]["doc"]["split"] if ours else t.split,
                "item_id": item_id,
                "doc_index": doc_id,
                "metric": main,
                "target": str(entries[0]["target"]),
            }
            for s in entries:
                for m in s["metrics"]:
                    row[f"{m},{s['filter']}"] = float(s[m])
            chosen = next((s for s in entries if s["filter"] == main_filter), entries[0])
            resp = chosen["filtered_resps"]
            if resp and isinstance(resp[0], (list, tuple)):  # loglikelihood requests: (logprob, is_greedy) per choice
                lls = [float(r[0]) for r in resp]
                row.update(prediction=str(max(range(len(lls)), key=lls.__getitem__)), loglikelihoods=lls)
            else:
                row.update(prediction=str(resp[0] if isinstance(resp, list) else resp), response=str(chosen["resps"][0][0]))
            row["score"] = row.get(main)
            rows.append(row)
    metric_cols = sorted({k for r in rows for k in r if "," in k})
    schema = {**_SAMPLE_SCHEMA, **{c: pl.Float64 for c in metric_cols}}
    return pl.DataFrame(rows, schema=schema).sort("benchmark", "task", "doc_index")


def _native_ids(task: EvalTask, docs: list[dict[str, Any]]) -> list[str]:
    """Item ids for a registered task's documents (doc order = hub order), as the registry's hub loader makes them."""
    spec = load_registry()[task.benchmark]
    assert spec.hf is not None
    return [it.item_id for it in items_from_records(spec, spec.hf, task.split, spec.hf.config or spec.hf.id or spec.name, docs)]


# --- integrity: clean vs contaminated ------------------------------------------------------------


def subset_scores(samples: pl.DataFrame, contaminated: Iterable[tuple[str, str]]) -> pl.DataFrame:
    """Per benchmark, the main metric on clean items vs items with contamination hits (HARE's integrity check).

    `contaminated` holds (benchmark, item_id) pairs, e.g. from `contamination_hits`. A score that
    is clearly higher on the contaminated subset says the model saw those items.
    """
    hits = pl.DataFrame(list(set(contaminated)), schema={"benchmark": pl.String, "item_id": pl.String}, orient="row")
    marked = samples.join(hits.with_columns(pl.lit(True).alias("contaminated")), on=["benchmark", "item_id"], how="left")
    marked = marked.with_columns(pl.col("contaminated").fill_null(False))
    return (
        marked.group_by("benchmark", "metric")
        .agg(
            pl.len().alias("n"),
            pl.col("score").mean().alias("score"),
            (~pl.col("contaminated")).sum().alias("n_clean"),
            pl.col("score").filter(~pl.col("contaminated")).mean().alias("score_clean"),
            pl.col("contaminated").sum().alias("n_contaminated"),
            pl.col("score").filter(pl.col("contaminated")).mean().alias("score_contaminated"),
        )
        .with_columns((pl.col("score_contaminated") - pl.col("score_clean")).alias("delta"))
        .sort("benchmark")
    )

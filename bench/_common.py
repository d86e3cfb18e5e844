"""Helpers shared by the bench scripts: the peers' virtualenv, the real corpora read once with this
project's ingest, and running one side in a subprocess (optionally pinned to one CPU) while sampling
the memory of its whole process tree.

Only the standard library and psutil are imported at module level: a side that runs in
`.venv-bench` (no hare_assets there) may import this module too. hare_assets is imported inside
`read_corpora`, which runs in the project's `.venv`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
HARE_PYTHON = Path(sys.executable)
BENCH_VENV = ROOT / ".venv-bench"
BENCH_PYTHON = BENCH_VENV / "bin" / "python"
DATATROVE_VERSION = "0.10.1"
# datatrove's English word tokenizer is spaCy's blank("en") (no model download), but spaCy is
# only in datatrove's [multilingual] extra; its JsonlReader/JsonlWriter need orjson ([io] extra).
PEER_PACKAGES = [f"datatrove[processing]=={DATATROVE_VERSION}", "datasketch", "psutil", "spacy>=3.8,<4", "orjson"]
PEER_CHECK = (
    "import importlib.metadata as m, datatrove, datasketch, orjson, psutil, spacy;"
    "spacy.blank('en')('offline check.');"
    f"assert m.version('datatrove') == {DATATROVE_VERSION!r}, m.version('datatrove');"
    "print(' '.join(f'{p}=={m.version(p)}' for p in ('datatrove', 'spacy', 'datasketch', 'orjson', 'numpy')))"
)
ONE_THREAD = {k: "1" for k in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMEXPR_NUM_THREADS", "RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
PROFILE = "local-corpora"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def default_data_dir() -> Path:
    """`$HARE_REAL_DATA`, else ../shared/data beside the checkout (the `--data` default of every bench)."""
    return Path(os.environ.get("HARE_REAL_DATA") or ROOT.parent / "shared" / "data")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def clean_env() -> dict[str, str]:
    """This process's environment without what would leak one virtualenv into another."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


# --- the peers' virtualenv ---------------------------------------------------------------------------


def peer_versions() -> str | None:
    if not BENCH_PYTHON.exists():
        return None
    done = subprocess.run([str(BENCH_PYTHON), "-c", PEER_CHECK], capture_output=True, text=True,
                          env={**clean_env(), **OFFLINE})
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_bench_venv() -> str:
    """Create .venv-bench with the peers when it is missing or incomplete; return their versions."""
    versions = peer_versions()
    if versions:
        return versions
    log(f"setting up {BENCH_VENV.name} with {' '.join(PEER_PACKAGES)} (a few minutes, once)")
    if not BENCH_PYTHON.exists():
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    pip = [str(BENCH_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    versions = peer_versions()
    if not versions:
        raise SystemExit(f"{BENCH_VENV} is set up but the peers do not import; run: {BENCH_PYTHON} -c \"{PEER_CHECK}\"")
    return versions


# --- the real corpora, read once with this project's ingest -------------------------------------------------


def read_corpora(data: Path | None = None) -> tuple[list[tuple[str, list[dict]]], int]:
    """Every document of the `local-corpora` profile (`list_shards` + `read_shard`), per source in profile
    order, as the readers return them; and how many records the readers quarantined."""
    if data is not None:
        os.environ["HARE_REAL_DATA"] = str(data)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from hare_assets.lib.profile import load_profile
    from hare_assets.lib.readers import list_shards, read_shard

    profile = load_profile(PROFILE)
    sources, quarantined = [], 0
    for src in profile.sources:
        docs = []
        for shard in list_shards(src):
            result = read_shard(src, shard, profile.ingest.max_doc_bytes)
            quarantined += len(result.quarantine)
            docs += result.docs
        sources.append((src.name, docs))
    return sources, quarantined


def bench_id(doc: dict) -> str:
    """The id a document has in every bench export: `doc_id@source/shard/row`."""
    return f"{doc['doc_id']}@{doc['source']}/{doc['shard']}/{doc['row']}"


def source_of(doc_id: str) -> str:
    return doc_id.split("@", 1)[1].split("/", 1)[0]


def text_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def write_jsonl_docs(path: Path, docs: list[dict]) -> dict[str, dict]:
    """One JSONL file of reader documents in the layout every runner reads (datatrove's JsonlReader
    too): `{"id": bench_id, "text": ..., "metadata": {doc_id, source, shard, row, meta}}`.
    Returns {id: {source, shard, row, text, bytes, meta}} for the figures."""
    out: dict[str, dict] = {}
    with path.open("w", encoding="utf-8") as fh:
        for d in docs:
            doc_id = bench_id(d)
            out[doc_id] = {"source": d["source"], "shard": d["shard"], "row": d["row"], "text": d["text"],
                           "bytes": text_bytes(d["text"]), "meta": json.loads(d["meta"])}
            record = {"id": doc_id, "text": d["text"], "metadata": {k: d[k] for k in ("doc_id", "source", "shard", "row", "meta")}}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out


def export_corpora(out: Path, data: Path | None = None) -> dict:
    """Per-source JSONL through this project's ingest; file names (`NN_source.jsonl`) sort in profile order."""
    out.mkdir(parents=True, exist_ok=True)
    sources, quarantined = read_corpora(data)
    docs: dict[str, dict] = {}
    for i, (name, source_docs) in enumerate(sources):
        docs.update(write_jsonl_docs(out / f"{i:02d}_{name}.jsonl", source_docs))
    return {"docs": docs, "quarantined": quarantined, "sources": [name for name, _ in sources]}


# --- one side in its own process ----------------------------------------------------------------------------


def _pss_bytes(pid: int) -> tuple[int, str]:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024, "pss"
    except OSError:
        pass
    proc = psutil.Process(pid)
    try:
        return proc.memory_full_info().pss, "pss"
    except (psutil.AccessDenied, AttributeError):
        return proc.memory_info().rss, "rss"


def _rss_bytes(pid: int) -> tuple[int, str]:
    return psutil.Process(pid).memory_info().rss, "rss"


class TreeSampler(threading.Thread):
    """Peak memory of a process and all its descendants, sampled every `interval` seconds: PSS (RSS where
    PSS cannot be read) with kind="pss", plain RSS with kind="rss"."""

    def __init__(self, pid: int, interval: float = 0.05, kind: str = "pss"):
        super().__init__(daemon=True)
        self.root, self.interval, self.stop = psutil.Process(pid), interval, threading.Event()
        self.measure = _pss_bytes if kind == "pss" else _rss_bytes
        self.peak, self.samples, self.kind = 0, 0, kind

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for proc in procs:
                try:
                    value, kind = self.measure(proc.pid)
                except (psutil.Error, OSError, ValueError):
                    continue
                total += value
                if kind == "rss":
                    self.kind = "rss"
            if total:
                self.peak, self.samples = max(self.peak, total), self.samples + 1
            self.stop.wait(self.interval)


@dataclass
class Finished:
    returncode: int
    wall_s: float
    peak_mib: float  # sampled peak of the process tree
    peak_kind: str  # "pss" or "rss"
    samples: int
    maxrss_mib: float  # the kernel's max RSS of the child (largest process of its tree that was waited for)
    log_path: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def run_sampled(cmd: list[str], env: dict[str, str], log_path: Path, cpu: int | None = None,
                interval: float = 0.05, kind: str = "pss") -> Finished:
    """Run `cmd` (stdout and stderr to `log_path`) pinned to `cpu` when given; sample its tree's memory."""
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, preexec_fn=preexec)
        sampler = TreeSampler(proc.pid, interval, kind)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Finished(proc.returncode, wall, sampler.peak / 2**20, sampler.kind, sampler.samples, usage.ru_maxrss / 1024, log_path)


def pinned_cpu(no_pin: bool) -> int | None:
    """The CPU every side is pinned to (the highest this process may use), or None with --no-pin."""
    return None if no_pin else max(os.sched_getaffinity(0))


# --- scratch folder and figures ------------------------------------------------------------------------------


def write_figures(path: Path | None, figures: dict) -> None:
    """`--json PATH`: every figure, indented."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2) + "\n")
        log(f"figures written to {path}")


def drop_scratch(work: Path, keep: bool, made_here: bool) -> None:
    """`--keep` keeps the scratch folder; otherwise a temporary one (no `--workdir`) is removed."""
    if keep:
        log(f"scratch kept in {work}")
    elif made_here:
        shutil.rmtree(work, ignore_errors=True)


def add_common_arguments(parser, keep_what: str) -> None:
    """The options every peer bench shares: runs, JSON figures, the data, the scratch folder."""
    parser.add_argument("--runs", type=int, default=3, help="repetitions per side (medians are printed)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--data", type=Path, default=default_data_dir(),
                        help="the shared real data (default: $HARE_REAL_DATA or ../shared/data)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help=f"keep the scratch folder ({keep_what})")

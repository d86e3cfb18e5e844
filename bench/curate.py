"""Clean + dedup throughput of this project against datatrove on the real corpora, side by side.

    .venv/bin/python bench/curate.py [--runs 3] [--json figures.json] [--keep]
    make bench-curate

1. Creates the peers' virtualenv `.venv-bench` when it is missing (datatrove and text-dedup
   cannot share one: urllib3). Nothing downloads at run time.
2. Exports the real corpora once with this project's own ingest (profile `local-corpora`,
   `list_shards` + `read_shard`) to per-source JSONL files, so both sides read identical
   documents; a document's id is `doc_id@source/shard/row`.
3. Per repetition and side, runs a subprocess pinned to one CPU: `pipeline` (clean, then
   MinHash dedup of what the cleaning kept) and `dedup` (MinHash dedup of every exported
   document). Our side: bench/_hare_runner.py in .venv. datatrove: bench/_datatrove_runner.py
   in .venv-bench. The parent samples the PSS of each subprocess tree every ~50 ms.
4. Prints medians, ratios (ours / datatrove), the agreement of the dedup decisions on the
   unfiltered input, and the agreement of each side's filters with the human labels of
   web/dclm_majority_data.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
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
SIDES = {"hare": (HARE_PYTHON, BENCH_DIR / "_hare_runner.py"),
         "datatrove": (BENCH_PYTHON, BENCH_DIR / "_datatrove_runner.py")}
LABELLED_SHARD = ("web", "dclm_majority_data.jsonl")
ONE_THREAD = {k: "1" for k in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMEXPR_NUM_THREADS", "RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the peers' virtualenv ---------------------------------------------------------------------------


def peer_versions() -> str | None:
    if not BENCH_PYTHON.exists():
        return None
    done = subprocess.run([str(BENCH_PYTHON), "-c", PEER_CHECK], capture_output=True, text=True,
                          env={**_clean_env(), **OFFLINE})
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


# --- the shared input ---------------------------------------------------------------------------------


def export_corpora(out: Path) -> dict:
    """Per-source JSONL through this project's ingest; file names sort in profile source order."""
    from hare_assets.lib.profile import load_profile
    from hare_assets.lib.readers import list_shards, read_shard

    profile = load_profile("local-corpora")
    out.mkdir(parents=True, exist_ok=True)
    docs: dict[str, dict] = {}
    quarantined = 0
    for i, src in enumerate(profile.sources):
        with (out / f"{i:02d}_{src.name}.jsonl").open("w", encoding="utf-8") as fh:
            for shard in list_shards(src):
                result = read_shard(src, shard, profile.ingest.max_doc_bytes)
                quarantined += len(result.quarantine)
                for d in result.docs:
                    doc_id = f"{d['doc_id']}@{d['source']}/{d['shard']}/{d['row']}"
                    meta = json.loads(d["meta"])
                    docs[doc_id] = {"source": d["source"], "shard": d["shard"], "text": d["text"],
                                    "bytes": len(d["text"].encode("utf-8", "surrogatepass")),
                                    "label": meta.get("label") if (d["source"], d["shard"]) == LABELLED_SHARD else None}
                    record = {"id": doc_id, "text": d["text"],
                              "metadata": {k: d[k] for k in ("doc_id", "source", "shard", "row", "meta")}}
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return {"docs": docs, "quarantined": quarantined, "sources": [s.name for s in profile.sources]}


# --- one side, one mode, one repetition -----------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


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


class TreeSampler(threading.Thread):
    """Peak PSS (RSS where PSS cannot be read) of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root, self.interval, self.stop = psutil.Process(pid), interval, threading.Event()
        self.peak, self.samples, self.kind = 0, 0, "pss"

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for proc in procs:
                try:
                    value, kind = _pss_bytes(proc.pid)
                except (psutil.Error, OSError, ValueError):
                    continue
                total += value
                if kind == "rss":
                    self.kind = "rss"
            if total:
                self.peak, self.samples = max(self.peak, total), self.samples + 1
            self.stop.wait(self.interval)


def run_side(side: str, mode: str, input_dir: Path, work: Path, cpu: int | None, data_root: Path,
             shape: tuple[int, int, int]) -> dict:
    python, script = SIDES[side]
    out_json = work / f"{side}-{mode}.json"
    run_dir = work / f"{side}-{mode}"
    env = {**_clean_env(), **ONE_THREAD, **OFFLINE, "HARE_REAL_DATA": str(data_root)}
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    work.mkdir(parents=True, exist_ok=True)
    with (work / f"{side}-{mode}.log").open("w") as log_fh:
        started = time.perf_counter()
        proc = subprocess.Popen([str(python), str(script), mode, str(input_dir), str(run_dir), str(out_json), *map(str, shape)],
                                stdout=log_fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, preexec_fn=preexec)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (work / f"{side}-{mode}.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{side} {mode} failed with exit code {proc.returncode}:\n{tail}")
    result = json.loads(out_json.read_text())
    result.update(wall_s=wall, peak_mib=sampler.peak / 2**20, peak_kind=sampler.kind, samples=sampler.samples,
                  maxrss_mib=usage.ru_maxrss / 1024)
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


# --- figures ------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def source_of(doc_id: str) -> str:
    return doc_id.split("@", 1)[1].split("/", 1)[0]


def label_agreement(kept: set[str], docs: dict[str, dict]) -> dict:
    labelled = {i: d["label"] for i, d in docs.items() if d["label"] is not None}
    tp = sum(1 for i, y in labelled.items() if i in kept and int(y) == 1)
    fp = sum(1 for i, y in labelled.items() if i in kept and int(y) != 1)
    fn = sum(1 for i, y in labelled.items() if i not in kept and int(y) == 1)
    tn = len(labelled) - tp - fp - fn
    return {"documents": len(labelled), "kept": tp + fp, "label_1": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "accuracy": (tp + tn) / len(labelled) if labelled else float("nan"),
            "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn)}


def dedup_agreement(ours: dict, theirs: dict, docs: dict[str, dict]) -> dict:
    """Per-document keep/remove agreement of two dedup runs over the same (unfiltered) documents."""
    o, t = set(ours["dedup_removed"]), set(theirs["dedup_removed"])
    n = len(docs)
    in_cluster_o = o | {kept for _, kept in ours["dedup_pairs"]}
    in_cluster_t = {i for pair in theirs["dedup_pairs"] for i in pair}
    return {
        "documents": n,
        "agreement": (n - len(o ^ t)) / n,
        "removed_ours": len(o), "removed_datatrove": len(t), "removed_both": len(o & t),
        "removed_only_ours": len(o - t), "removed_only_datatrove": len(t - o),
        "ours_removed_by_source": dict(Counter(map(source_of, o))),
        "datatrove_removed_by_source": dict(Counter(map(source_of, t))),
        "ours_removed_news": sum(source_of(i) == "news" for i in o),
        # "is this document part of some duplicate cluster", whichever member each side keeps
        "cluster_membership_agreement": (n - len(in_cluster_o ^ in_cluster_t)) / n,
        "only_ours_ids": sorted(o - t), "only_datatrove_ids": sorted(t - o),
    }


def explain_disagreements(theirs: dict, only_theirs: list[str], docs: dict[str, dict], ngram: int) -> list[dict]:
    """For documents only datatrove removes: the best exact Jaccard (our shingles) with a datatrove partner."""
    try:
        from hare_assets.lib.dedup import jaccard, shingles
    except ImportError:
        return []
    partners: dict[str, set[str]] = {}
    for a, b in theirs["dedup_pairs"]:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    rows = []
    for doc in only_theirs:
        best = max(((jaccard(shingles(docs[doc]["text"], ngram), shingles(docs[p]["text"], ngram)), p)
                    for p in partners.get(doc, ())), default=(float("nan"), None))
        rows.append({"id": doc, "best_jaccard": round(best[0], 4), "partner": best[1]})
    return rows


def side_figures(runs: list[dict], dedup_runs: list[dict], mb: float, n_docs: int) -> dict:
    e2e = median([r["timings"]["total_s"] for r in runs])
    minhash = median([r["timings"]["total_s"] for r in dedup_runs])
    return {
        "end_to_end_s": e2e, "clean_s": median([r["timings"]["clean_s"] for r in runs]),
        "dedup_s": median([r["timings"]["dedup_s"] for r in runs]),
        "process_wall_s": median([r["wall_s"] for r in runs]),
        "import_s": median([r["timings"]["import_s"] for r in runs]),
        "mb_s": mb / e2e, "docs_s": n_docs / e2e,
        "minhash_only_s": minhash, "minhash_only_mb_s": mb / minhash,
        "peak_mib": median([r["peak_mib"] for r in runs]), "peak_mib_max": max(r["peak_mib"] for r in runs),
        "minhash_only_peak_mib": median([r["peak_mib"] for r in dedup_runs]),
        "maxrss_mib": median([r["maxrss_mib"] for r in runs]),
        "peak_kind": runs[0]["peak_kind"],
        "runs": [{k: r[k] for k in ("timings", "wall_s", "peak_mib", "maxrss_mib", "samples")} for r in runs],
        "minhash_only_runs": [{k: r[k] for k in ("timings", "wall_s", "peak_mib", "maxrss_mib", "samples")} for r in dedup_runs],
    }


def per_source(ids: list[str], sources: list[str]) -> dict[str, int]:
    counts = Counter(map(source_of, ids))
    return {s: counts.get(s, 0) for s in sources}


def consistent(results: list[dict], key: str) -> bool:
    return all(sorted(r[key]) == sorted(results[0][key]) for r in results[1:])


# --- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per side and mode (medians are printed)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("HARE_REAL_DATA") or ROOT.parent / "shared" / "data"),
                        help="the shared real data (default: $HARE_REAL_DATA or ../shared/data)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (export, logs, raw results)")
    parser.add_argument("--ngram", type=int, default=5, help="MinHash word n-gram size, both sides (default 5)")
    parser.add_argument("--bands", type=int, default=14, help="MinHash bands / datatrove buckets, both sides (default 14)")
    parser.add_argument("--rows", type=int, default=8, help="MinHash rows per band / hashes per bucket, both sides (default 8)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin each runner to one CPU")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not (args.data / "corpora").is_dir():
        raise SystemExit(f"no real corpora under {args.data}/corpora; pass --data or set HARE_REAL_DATA")
    os.environ["HARE_REAL_DATA"] = str(args.data.resolve())
    shape = (args.ngram, args.bands, args.rows)

    started = time.perf_counter()
    versions = ensure_bench_venv()
    log(f"peers: {versions}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hare-bench-curate-"))
    work.mkdir(parents=True, exist_ok=True)
    cpu = None if args.no_pin else max(os.sched_getaffinity(0))
    try:
        export = export_corpora(work / "input")
        docs, sources = export["docs"], export["sources"]
        n_docs, n_bytes = len(docs), sum(d["bytes"] for d in docs.values())
        mb = n_bytes / 1e6
        log(f"exported {n_docs} documents, {mb:.2f} MB of text ({export['quarantined']} quarantined at ingest) to {work / 'input'}")

        results: dict[tuple[str, str], list[dict]] = {(s, m): [] for s in SIDES for m in ("pipeline", "dedup")}
        for rep in range(args.runs):
            order = list(SIDES) if rep % 2 == 0 else list(SIDES)[::-1]  # alternate who goes first
            for side in order:
                for mode in ("pipeline", "dedup"):
                    res = run_side(side, mode, work / "input", work / f"run{rep + 1}", cpu, args.data, shape)
                    results[(side, mode)].append(res)
                    log(f"run {rep + 1}/{args.runs} {side:9s} {mode:8s} {res['timings']['total_s']:7.2f} s work, "
                        f"{res['wall_s']:7.2f} s wall, peak {res['peak_mib']:6.0f} MiB")
        noverify = run_side("hare", "dedup-noverify", work / "input", work / "extra", cpu, args.data, shape)

        ours = side_figures(results[("hare", "pipeline")], results[("hare", "dedup")], mb, n_docs)
        theirs = side_figures(results[("datatrove", "pipeline")], results[("datatrove", "dedup")], mb, n_docs)
        hp, dp = results[("hare", "pipeline")][0], results[("datatrove", "pipeline")][0]
        hd, dd = results[("hare", "dedup")][0], results[("datatrove", "dedup")][0]
        agreement = dedup_agreement(hd, dd, docs)
        agreement["ours_verify"] = hd["minhash"]["verify"]
        agreement["disagreements"] = explain_disagreements(dd, agreement["only_datatrove_ids"], docs, hd["minhash"]["ngram"])
        agreement_noverify = dedup_agreement(noverify, dd, docs)
        quality = {"hare": label_agreement(set(hp["clean_kept"]), docs),
                   "datatrove": label_agreement(set(dp["clean_kept"]), docs)}
        kept = {side: {"input": per_source(list(docs), sources),
                       "after_clean": per_source(r["clean_kept"], sources), "after_dedup": per_source(r["kept"], sources)}
                for side, r in (("hare", hp), ("datatrove", dp))}
        deterministic = {side: all(consistent(results[(side, m)], "kept") for m in ("pipeline", "dedup")) for side in SIDES}
        ratios = {"mb_s": ratio(ours["mb_s"], theirs["mb_s"]), "docs_s": ratio(ours["docs_s"], theirs["docs_s"]),
                  "minhash_only_mb_s": ratio(ours["minhash_only_mb_s"], theirs["minhash_only_mb_s"]),
                  "peak_mib": ratio(ours["peak_mib"], theirs["peak_mib"]),
                  "minhash_only_peak_mib": ratio(ours["minhash_only_peak_mib"], theirs["minhash_only_peak_mib"])}
        targets = {"throughput_2x": ratios["mb_s"] >= 2.0, "peak_memory_at_most_datatrove": ratios["peak_mib"] <= 1.0,
                   "dedup_agreement_99pct": agreement["agreement"] >= 0.99}
        figures = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "pinned_cpu": cpu, "python": platform.python_version(),
                        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
            "peers": versions, "runs": args.runs,
            "input": {"documents": n_docs, "bytes": n_bytes, "mb": mb, "quarantined_at_ingest": export["quarantined"],
                      "by_source": per_source(list(docs), sources)},
            "minhash_params": {"hare": hd["minhash"], "datatrove": dd["minhash"]},
            "hare": ours, "datatrove": theirs, "ratios": ratios, "targets": targets,
            "dedup_agreement_unfiltered": agreement, "dedup_agreement_unfiltered_hare_noverify": agreement_noverify,
            "hare_noverify_minhash_only_s": noverify["timings"]["total_s"],
            "quality_vs_labels": quality, "kept_by_source": kept, "deterministic": deterministic,
            "hare_clean_removed_by_reason": dict(Counter(hp["clean_removed"].values()).most_common()),
            "bench_seconds": time.perf_counter() - started,
        }
        report(figures)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
            log(f"figures written to {args.json}")
    finally:
        if args.keep:
            log(f"scratch kept in {work}")
        elif args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(f: dict) -> None:
    h, d, r, a, an = f["hare"], f["datatrove"], f["ratios"], f["dedup_agreement_unfiltered"], f["dedup_agreement_unfiltered_hare_noverify"]
    inp = f["input"]
    p = lambda s="": print(s)  # noqa: E731
    p(f"\nInput: {inp['documents']} documents, {inp['mb']:.2f} MB (10^6 bytes of UTF-8 text), sources {inp['by_source']}")
    p(f"One core each (pinned CPU {f['machine']['pinned_cpu']}), {f['runs']} runs per side, medians. Peers: {f['peers']}")
    hm, dm = f["minhash_params"]["hare"], f["minhash_params"]["datatrove"]
    pd = hm["profile_default"]
    p(f"MinHash: hare {hm['ngram']}-gram {hm['bands']}x{hm['rows']} (exact pass first, verify={hm['verify']} at "
      f"Jaccard {hm['threshold']}); datatrove {dm['ngram']}-gram {dm['bands']}x{dm['rows']} ({dm['hash']}, no verify)")
    if (pd["ngram"], pd["bands"], pd["rows"]) != (hm["ngram"], hm["bands"], hm["rows"]):
        p(f"  (the profile's own shape is {pd['ngram']}-gram {pd['bands']}x{pd['rows']}, num_perm {pd['num_perm']}; "
          f"overridden on our side so both hash alike; --ngram/--bands/--rows set both sides)")
    p()
    header = f"{'side':10s} {'MB/s e2e':>9s} {'docs/s':>8s} {'MinHash-only MB/s':>18s} {'peak MiB':>9s} " \
             f"{'MinHash peak MiB':>17s} {'e2e s':>7s} {'clean s':>8s} {'dedup s':>8s} {'wall s':>7s}"
    p(header)
    p("-" * len(header))
    for name, s in (("hare", h), ("datatrove", d)):
        p(f"{name:10s} {s['mb_s']:9.3f} {s['docs_s']:8.1f} {s['minhash_only_mb_s']:18.3f} {s['peak_mib']:9.0f} "
          f"{s['minhash_only_peak_mib']:17.0f} {s['end_to_end_s']:7.2f} {s['clean_s']:8.2f} {s['dedup_s']:8.2f} {s['process_wall_s']:7.2f}")
    p(f"{'ours/dt':10s} {r['mb_s']:8.2f}x {r['docs_s']:7.2f}x {r['minhash_only_mb_s']:17.2f}x {r['peak_mib']:8.2f}x "
      f"{r['minhash_only_peak_mib']:16.2f}x")
    p(f"(peak = {h['peak_kind'].upper()} of the runner's process tree, sampled every 50 ms; kernel max RSS: "
      f"hare {h['maxrss_mib']:.0f} MiB, datatrove {d['maxrss_mib']:.0f} MiB; e2e excludes interpreter start-up and imports: "
      f"hare {h['import_s']:.2f} s, datatrove {d['import_s']:.2f} s)")
    p()
    p(f"Dedup decisions on the unfiltered input ({a['documents']} documents), ours with verify={a['ours_verify']}:")
    p(f"  agreement {a['agreement']:.4%}; removed: ours {a['removed_ours']}, datatrove {a['removed_datatrove']}, both "
      f"{a['removed_both']}, only ours {a['removed_only_ours']}, only datatrove {a['removed_only_datatrove']}")
    p(f"  ours removed by source {a['ours_removed_by_source']} ({a['ours_removed_news']} AG News); "
      f"datatrove {a['datatrove_removed_by_source']}")
    p(f"  in-a-duplicate-cluster agreement {a['cluster_membership_agreement']:.4%}")
    if a["disagreements"]:
        js = sorted(x["best_jaccard"] for x in a["disagreements"])
        p(f"  removed only by datatrove: best exact Jaccard with a datatrove partner (our shingles) {js[0]:.3f}..{js[-1]:.3f}")
    p(f"  ours with verify=False: agreement {an['agreement']:.4%}, ours removes {an['removed_ours']} "
      f"(only ours {an['removed_only_ours']}, only datatrove {an['removed_only_datatrove']})")
    p()
    p("Filters vs human labels (web/dclm_majority_data.jsonl, kept by the filters ~ label 1):")
    for name, q in f["quality_vs_labels"].items():
        p(f"  {name:10s} accuracy {q['accuracy']:.3f}  precision {q['precision']:.3f}  recall {q['recall']:.3f}  "
          f"(kept {q['kept']} of {q['documents']}; {q['label_1']} labelled 1)")
    p()
    p("Documents kept per source (input -> after clean -> after dedup):")
    for name, k in f["kept_by_source"].items():
        p(f"  {name:10s} " + ", ".join(f"{s} {k['input'][s]}->{k['after_clean'][s]}->{k['after_dedup'][s]}" for s in k["input"]))
    p(f"Same decisions in every run: {f['deterministic']}")
    p()
    t = f["targets"]
    p("Targets: " + "; ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in t.items()))
    p(f"(bench took {f['bench_seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())

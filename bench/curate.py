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
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
from _common import (
    add_common_arguments,
    BENCH_DIR,
    BENCH_PYTHON,
    HARE_PYTHON,
    OFFLINE,
    ONE_THREAD,
    clean_env,
    drop_scratch,
    ensure_bench_venv,
    export_corpora,
    log,
    median,
    pinned_cpu,
    ratio,
    run_sampled,
    source_of,
    write_figures,
)

SIDES = {"hare": (HARE_PYTHON, BENCH_DIR / "_hare_runner.py"),
         "datatrove": (BENCH_PYTHON, BENCH_DIR / "_datatrove_runner.py")}
LABELLED_SHARD = ("web", "dclm_majority_data.jsonl")


# --- the shared input ---------------------------------------------------------------------------------


def export_labelled_corpora(out: Path) -> dict:
    """The shared export (see _common.export_corpora), with the human quality label of web/dclm_majority_data.jsonl."""
    export = export_corpora(out)
    for d in export["docs"].values():
        d["label"] = d["meta"].get("label") if (d["source"], d["shard"]) == LABELLED_SHARD else None
    return export


# --- one side, one mode, one repetition -----------------------------------------------------------------


def run_side(side: str, mode: str, input_dir: Path, work: Path, cpu: int | None, data_root: Path,
             shape: tuple[int, int, int]) -> dict:
    python, script = SIDES[side]
    out_json = work / f"{side}-{mode}.json"
    run_dir = work / f"{side}-{mode}"
    env = {**clean_env(), **ONE_THREAD, **OFFLINE, "HARE_REAL_DATA": str(data_root)}
    work.mkdir(parents=True, exist_ok=True)
    done = run_sampled([str(python), str(script), mode, str(input_dir), str(run_dir), str(out_json), *map(str, shape)],
                       env, work / f"{side}-{mode}.log", cpu)
    if done.returncode != 0:
        raise SystemExit(f"{side} {mode} failed with exit code {done.returncode}:\n{done.tail()}")
    result = json.loads(out_json.read_text())
    result.update(wall_s=done.wall_s, peak_mib=done.peak_mib, peak_kind=done.peak_kind, samples=done.samples,
                  maxrss_mib=done.maxrss_mib)
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


# --- figures ------------------------------------------------------------------------------------------


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
    add_common_arguments(parser, "export, logs, raw results")
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
    cpu = pinned_cpu(args.no_pin)
    try:
        export = export_labelled_corpora(work / "input")
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
        write_figures(args.json, figures)
    finally:
        drop_scratch(work, args.keep, args.workdir is None)
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

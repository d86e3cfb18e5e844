"""D1 at scale: throughput and memory of the block pipeline from 200 MB to 2 GB, datatrove beside it, and what
adding one block costs.

    .venv/bin/python bench/scale.py [--sizes 200,1000,2000] [--datatrove-mb 1000] [--ray-mb 1000] [--increment-mb 50] [--json f.json]
    make bench-scale

1. Generates a corpus per size from the real corpora (deterministic, seed 0): every document is
   8-40 sentences drawn from the sentences of all real corpora (so distinct documents of real
   text), written as JSONL shards of `--shard-mb`; a known share are planted near duplicates
   (about 2 % of the words replaced) or exact copies of an earlier document, recorded with
   their shard and row.
2. Runs D1 through the real Dagster assets (bench/_scale_runner.py: manifest, then per block
   ingest -> clean -> MinHash signatures, the corpus-wide duplicate decision, then per block
   dedup -> decontamination against the demo benchmark) with `ingest.workers = --workers`,
   sampling the PSS of the whole process tree.
3. Runs datatrove 0.10.1 (.venv-bench) on the `--datatrove-mb` corpus with the same number of
   workers: Gopher repetition + Gopher quality + C4 filters, then its 4-stage MinHash.
4. The incremental case: the `--increment-mb` shards added to the `--increment-base` corpus
   (a new block, on the home of step 2), against D1 of those shards alone in a fresh home.
5. `--packed-mb`: a corpus through every stage up to packed_sequences (tokens, embeddings, topics,
   the stage1 mixture and its pack), then `--packed-increment-mb` more shards through the same
   home, against all those stages from scratch on the grown corpus (and the same mixture and pack).
6. `--ray-mb`: D1 of that corpus with `engine: ray` (a local Ray cluster of `--workers` CPUs, started by
   the run and counted in its peak) against the local engine: wall time, peak, the same decisions.
7. Prints per size MB/s, peak PSS, recall and precision of the duplicate removal on the
   planted pairs, the ratios the targets name, and whether each target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

from _common import (
    BENCH_DIR,
    BENCH_PYTHON,
    HARE_PYTHON,
    OFFLINE,
    clean_env,
    ensure_bench_venv,
    log,
    ratio,
    read_corpora,
    run_sampled,
    write_figures,
)

SENTENCE = re.compile(r"(?<=[.!?])\s+")
NEAR_SHARE, EXACT_SHARE = 0.04, 0.01


# --- the corpus ---------------------------------------------------------------------------------------------


def sentence_pool(data: Path) -> list[str]:
    """Every sentence of 6-60 words in the real corpora, in a fixed order."""
    sources, _ = read_corpora(data)
    pool = {s.strip() for _, docs in sources for d in docs for s in SENTENCE.split(" ".join(d["text"].split()))}
    return sorted(s for s in pool if 6 <= len(s.split()) <= 60)


def generate(out: Path, mb: float, pool: list[str], seed: int, prefix: str = "part",
             originals: list[str] | None = None) -> list[dict]:
    """Shards of about `shard_bytes` under `out` until `mb` MB of text; returns the planted pairs
    ({copy, original, kind} as "shard#row"). `originals` (texts with keys) may seed copies too."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    target, written, planted = mb * 1e6, 0, []
    recent: list[tuple[str, str]] = list(originals or [])
    shard_index, row, fh, shard_bytes = 0, 0, None, 0
    while written < target:
        if fh is None or shard_bytes >= SHARD_BYTES:
            if fh:
                fh.close()
            name = f"{prefix}-{shard_index:05d}.jsonl"
            fh, shard_bytes, row = (out / name).open("w", encoding="utf-8"), 0, 0
            shard_index += 1
        roll = rng.random()
        if recent and roll < EXACT_SHARE + NEAR_SHARE:
            key, text = recent[rng.randrange(len(recent))]
            kind = "exact" if roll < EXACT_SHARE else "near"
            if kind == "near":
                words = text.split()
                for _ in range(max(1, len(words) // 50)):
                    words[rng.randrange(len(words))] = rng.choice(rng.choice(pool).split())
                text = " ".join(words)
            planted.append({"copy": f"{name}#{row}", "original": key, "kind": kind})
        else:
            text = " ".join(rng.sample(pool, rng.randint(8, 40)))
            if len(recent) < 5000:
                recent.append((f"{name}#{row}", text))
            else:
                recent[rng.randrange(5000)] = (f"{name}#{row}", text)
        line = json.dumps({"id": f"{name}#{row}", "text": text}, ensure_ascii=False) + "\n"
        fh.write(line)
        size = len(text.encode("utf-8"))
        written, shard_bytes, row = written + size, shard_bytes + size, row + 1
    fh.close()
    return planted


def dedup_quality(result: dict, planted: list[dict]) -> dict:
    """Recall: planted copies removed as duplicates, of those whose pair both passed cleaning.
    Precision: removed documents that are planted copies (or whose kept partner is one's original)."""
    gone = set(result["clean_removed"])
    removed = {f"{d['shard']}#{d['row']}": f"{d['kept_shard']}#{d['kept_row']}" for d in result["decisions"]}
    related = {(p["copy"], p["original"]) for p in planted} | {(p["original"], p["copy"]) for p in planted}
    copies = {p["copy"] for p in planted}
    eligible = [p for p in planted if p["copy"] not in gone and p["original"] not in gone]
    caught = sum(p["copy"] in removed for p in eligible)
    right = sum(1 for doc, kept in removed.items() if doc in copies or (doc, kept) in related)
    return {"planted": len(planted), "eligible": len(eligible), "recall": ratio(caught, len(eligible)),
            "removed": len(removed), "precision": ratio(right, len(removed))}


# --- the sides ---------------------------------------------------------------------------------------------


def profile_yaml(path: Path, corpus: Path, workers: int, engine: str = "local") -> Path:
    path.write_text(
        "name: scale\n"
        f"ingest: {{workers: {workers}}}\n"
        f"engine: {{kind: {engine}, num_cpus: {workers}}}\n"
        f"mixture: {{stage1: {{tokens: {PACK_TOKENS}, datasets: {{d1: 1.0}}}}}}\n"
        f"sources: [{{name: web, format: jsonl, path: {corpus}}}]\n"
        "integrity: {benchmarks: [demo_mc]}\n"
    )
    return path


def run_hare(corpus: Path, home: Path, work: Path, label: str, workers: int, engine: str = "local",
             through: str = "d1") -> dict:
    profile = profile_yaml(work / f"{label}.yaml", corpus, workers, engine)
    out = work / f"{label}.json"
    env = {**clean_env(), **OFFLINE, "HARE_CACHE": str(work / "cache")}
    done = run_sampled([str(HARE_PYTHON), str(BENCH_DIR / "_scale_runner.py"), str(profile), str(home), str(out), through],
                       env, work / f"{label}.log")
    if done.returncode:
        raise SystemExit(f"{label} failed ({done.returncode}):\n{done.tail()}")
    result = json.loads(out.read_text())
    result.update(wall_s=done.wall_s, peak_mib=done.peak_mib, peak_kind=done.peak_kind)
    return result


def run_datatrove(corpus: Path, work: Path, workers: int) -> dict:
    out = work / "datatrove.json"
    tasks = len(list(corpus.glob("*.jsonl")))
    env = {**clean_env(), **OFFLINE}
    done = run_sampled([str(BENCH_PYTHON), str(BENCH_DIR / "_datatrove_runner.py"), "pipeline", str(corpus), str(work / "dt"),
                        str(out), "5", "14", "8", str(tasks), str(workers)], env, work / "datatrove.log")
    if done.returncode:
        raise SystemExit(f"datatrove failed ({done.returncode}):\n{done.tail()}")
    result = json.loads(out.read_text())
    shutil.rmtree(work / "dt", ignore_errors=True)
    return {"wall_s": done.wall_s, "work_s": result["timings"]["total_s"], "peak_mib": done.peak_mib,
            "input_docs": result["input_docs"], "kept": len(result["kept"])}


# --- main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global SHARD_BYTES
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,1000,2000", help="corpus sizes in MB (text bytes)")
    parser.add_argument("--datatrove-mb", type=int, default=1000, help="the size datatrove runs on (0: skip)")
    parser.add_argument("--increment-mb", type=int, default=50, help="the block added in the incremental case (0: skip)")
    parser.add_argument("--increment-base", type=int, default=1000, help="the size it is added to (one of --sizes)")
    parser.add_argument("--ray-mb", type=int, default=1000,
                        help="the size D1 also runs on with engine: ray, a local cluster of --workers CPUs (0: skip)")
    parser.add_argument("--packed-mb", type=int, default=0,
                        help="a corpus of this size through every stage up to packed_sequences, then --packed-increment-mb "
                             "more: the added block's cost against building those stages from scratch (0: skip)")
    parser.add_argument("--packed-increment-mb", type=float, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-mb", type=float, default=16)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("HARE_REAL_DATA") or BENCH_DIR.parent.parent / "shared" / "data"))
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep corpora, homes and logs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    SHARD_BYTES = int(args.shard_mb * 1e6)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hare-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    peers = ensure_bench_venv() if args.datatrove_mb else "skipped"
    pool = sentence_pool(args.data)
    log(f"{len(pool):,} real sentences; work in {work}")
    figures: dict = {"workers": args.workers, "cpus": os.cpu_count(), "peers": peers, "sizes": {}}

    originals: dict[int, list] = {}
    local_runs: dict[int, dict] = {}  # per size, the local engine's result (its decisions, for the Ray comparison)
    for mb in sizes:
        corpus = work / f"corpus-{mb}"
        planted = generate(corpus, mb, pool, seed=mb)
        log(f"{mb} MB: {len(planted):,} planted duplicates; running D1")
        result = run_hare(corpus, work / f"home-{mb}", work, f"hare-{mb}", args.workers)
        mbytes = result["raw_bytes"] / 1e6
        figures["sizes"][mb] = {
            "mb": round(mbytes, 1), "docs": result["raw_rows"], "wall_s": round(result["wall_s"], 1),
            "mb_s": round(mbytes / result["wall_s"], 3), "peak_mib": round(result["peak_mib"]), "stages_s":
            {k: round(v, 1) for k, v in result["timings"].items()}, **dedup_quality(result, planted),
        }
        originals[mb] = planted
        local_runs[mb] = result
        log(f"{mb} MB: {figures['sizes'][mb]}")

    if args.datatrove_mb:
        corpus = work / f"corpus-{args.datatrove_mb}"
        if not corpus.exists():
            generate(corpus, args.datatrove_mb, pool, seed=args.datatrove_mb)
        log(f"datatrove on {args.datatrove_mb} MB with {args.workers} workers")
        dt = run_datatrove(corpus, work, args.workers)
        dt["mb_s"] = round(args.datatrove_mb / dt["wall_s"], 3)
        figures["datatrove"] = dt
        ours = figures["sizes"].get(args.datatrove_mb)
        if ours:
            figures["vs_datatrove"] = {"throughput_ratio": round(ratio(ours["mb_s"], dt["mb_s"]), 2),
                                       "memory_ratio": round(ratio(ours["peak_mib"], dt["peak_mib"]), 2)}

    if args.ray_mb:
        corpus = work / f"corpus-{args.ray_mb}"
        if not corpus.exists():
            generate(corpus, args.ray_mb, pool, seed=args.ray_mb)
        log(f"{args.ray_mb} MB through Ray (a local cluster of {args.workers} CPUs)")
        on_ray = run_hare(corpus, work / f"home-ray-{args.ray_mb}", work, f"hare-ray-{args.ray_mb}", args.workers, "ray")
        local = local_runs.get(args.ray_mb) or run_hare(corpus, work / f"home-local-{args.ray_mb}", work,
                                                         f"hare-local-{args.ray_mb}", args.workers)
        figures["ray"] = {
            "mb": args.ray_mb, "wall_s": round(on_ray["wall_s"], 1), "peak_mib": round(on_ray["peak_mib"]),
            "local_wall_s": round(local["wall_s"], 1), "local_peak_mib": round(local["peak_mib"]),
            "throughput_ratio": round(ratio(local["wall_s"], on_ray["wall_s"]), 2),
            "same_decisions": _decision_keys(on_ray["decisions"]) == _decision_keys(local["decisions"]),
            "same_kept": on_ray["kept_rows"] == local["kept_rows"],
            "stages_s": {k: round(v, 1) for k, v in on_ray["timings"].items()},
        }
        log(f"ray: {figures['ray']}")

    if args.increment_mb and args.increment_base in figures["sizes"]:
        base = work / f"corpus-{args.increment_base}"
        extra = work / f"increment-{args.increment_mb}"
        generate(extra, args.increment_mb, pool, seed=7, prefix="zz-new")
        for shard in sorted(extra.glob("*.jsonl")):
            os.symlink(shard, base / shard.name)
        added = run_hare(base, work / f"home-{args.increment_base}", work, "hare-increment", args.workers)
        alone = run_hare(extra, work / "home-increment-alone", work, "hare-increment-alone", args.workers)
        figures["increment"] = {"mb": args.increment_mb, "added_wall_s": round(added["wall_s"], 1),
                                "alone_wall_s": round(alone["wall_s"], 1),
                                "ratio": round(ratio(added["wall_s"], alone["wall_s"]), 2),
                                "added_stages_s": {k: round(v, 1) for k, v in added["timings"].items()}}

    if args.packed_mb:
        base = work / f"packed-corpus-{args.packed_mb}"
        generate(base, args.packed_mb, pool, seed=args.packed_mb)
        home = work / f"home-packed-{args.packed_mb}"
        first = run_hare(base, home, work, "hare-packed-base", args.workers, through="packed")
        extra = work / f"packed-increment-{args.packed_increment_mb}"
        generate(extra, args.packed_increment_mb, pool, seed=11, prefix="zz-new")
        for shard in sorted(extra.glob("*.jsonl")):
            os.symlink(shard, base / shard.name)
        added = run_hare(base, home, work, "hare-packed-added", args.workers, through="packed")
        scratch = run_hare(base, work / "home-packed-scratch", work, "hare-packed-scratch", args.workers, through="packed")
        figures["packed_increment"] = {
            "base_mb": args.packed_mb, "mb": args.packed_increment_mb, "base_wall_s": round(first["wall_s"], 1),
            "added_wall_s": round(added["wall_s"], 1), "scratch_wall_s": round(scratch["wall_s"], 1),
            "ratio": round(ratio(added["wall_s"], scratch["wall_s"]), 3),
            "same_mixture_and_pack": added["fingerprints"] == scratch["fingerprints"],
            "added_stages_s": {k: round(v, 1) for k, v in added["timings"].items()},
            "scratch_stages_s": {k: round(v, 1) for k, v in scratch["timings"].items()},
        }
        log(f"through packed_sequences: {figures['packed_increment']}")

    report(figures, sizes)
    write_figures(args.json, figures)
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _decision_keys(decisions: list[dict]) -> list[tuple]:
    return sorted((d["shard"], d["row"], d["reason"], d["kept_shard"], d["kept_row"]) for d in decisions)


def report(f: dict, sizes: list[int]) -> None:
    print(f"\nD1 at scale, {f['workers']} workers on {f['cpus']} CPUs (peak = PSS of the process tree)")
    print("| size | docs | MB/s | peak MiB | wall s | dedup recall | dedup precision |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for mb in sizes:
        s = f["sizes"][mb]
        print(f"| {s['mb']} MB | {s['docs']:,} | {s['mb_s']} | {s['peak_mib']} | {s['wall_s']} | {s['recall']:.4f} | {s['precision']:.4f} |")
    checks = {}
    if len(sizes) > 1:
        small, large = f["sizes"][sizes[0]], f["sizes"][sizes[-1]]
        checks[f"peak memory {sizes[-1]} MB / {sizes[0]} MB <= 1.25"] = ratio(large["peak_mib"], small["peak_mib"])
        checks[f"throughput {sizes[-1]} MB / {sizes[0]} MB >= 0.9"] = ratio(large["mb_s"], small["mb_s"])
    if "datatrove" in f:
        dt = f["datatrove"]
        print(f"datatrove ({f['peers']}): {dt['mb_s']} MB/s, peak {dt['peak_mib']:.0f} MiB, {dt['wall_s']:.0f} s")
        if "vs_datatrove" in f:
            checks["throughput vs datatrove >= 3"] = f["vs_datatrove"]["throughput_ratio"]
            checks["peak memory vs datatrove <= 1"] = f["vs_datatrove"]["memory_ratio"]
    if "ray" in f:
        r = f["ray"]
        print(f"{r['mb']} MB through Ray: {r['wall_s']} s, peak {r['peak_mib']} MiB; local engine: {r['local_wall_s']} s, "
              f"peak {r['local_peak_mib']} MiB; throughput Ray / local {r['throughput_ratio']:.2f}; "
              f"same decisions: {r['same_decisions']}, same kept rows: {r['same_kept']}")
    if "increment" in f:
        inc = f["increment"]
        print(f"adding {inc['mb']} MB: {inc['added_wall_s']} s; the same shards alone: {inc['alone_wall_s']} s")
        checks["one new block / that block alone <= 2"] = inc["ratio"]
    if "packed_increment" in f:
        p = f["packed_increment"]
        print(f"up to packed_sequences: adding {p['mb']} MB to {p['base_mb']} MB: {p['added_wall_s']} s; all stages from scratch "
              f"on the same {p['base_mb'] + p['mb']} MB: {p['scratch_wall_s']} s; same mixture and pack: {p['same_mixture_and_pack']}")
        checks["one new block through packing / from scratch <= 0.2"] = p["ratio"]
    for name, value in checks.items():
        bound = float(name.rsplit(" ", 1)[1])
        met = value <= bound if "<=" in name else value >= bound
        print(f"{name}: {value:.2f} {'met' if met else 'NOT met'}")


SHARD_BYTES = 16_000_000
PACK_TOKENS = 2_000_000  # stage1's budget in the runs through packed_sequences

if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    raise SystemExit(main())

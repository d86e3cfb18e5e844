"""Embedding + clustering throughput of this project against a plain sentence-transformers + KMeans run.

    .venv/bin/python bench/topics.py [--runs 3] [--threads 2] [--sides ours,ours-fp32,ours-int8,naive] [--json figures.json]

Every document of every source of the real corpora (`--data`, else $HARE_REAL_DATA, else
../shared/data), read once with this project's readers (profile `local-corpora`,
`list_shards` + `read_shard`) and handed to every side as the same JSONL file. Sides, each
in its own subprocess so that its peak memory is its own (the parent samples the RSS of the
child's process tree with psutil every 20 ms; the kernel's max RSS is recorded too):

- `ours`: `hare_assets.lib.embed.Embedder()` with its defaults (precision `auto`: bf16 autocast where
  matmuls are native, i.e. a CUDA GPU or a CPU with AMX, else fp32; long documents as up to 4
  spread windows of 160 words, 128 tokens each) + `hare_assets.lib.topics.cluster`;
- `ours-fp32`: the same forced to fp32 (to attribute the difference);
- `ours-int8`: the same with `Embedder(quantize=True)` (dynamic int8 Linear layers; not the default);
- `naive`: `SentenceTransformer(same model).encode(texts, batch_size=32)` with default settings
  (whole documents, truncated at the model's 256 tokens) + `sklearn.cluster.KMeans(k)`.

Same k (the number of sources), same torch/OpenMP/tokenizer thread count for all. The clock
covers embed + cluster after the model is loaded (load time is printed apart). Runs alternate
the order of the sides. Prints medians, ratios against `naive`, and the purity of each side's
clusters against the source labels: plain (dominated by AG News, 92% of the documents) and
source-balanced (every source weighs the same).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import OFFLINE, ROOT, default_data_dir, log, read_corpora, run_sampled, text_bytes

SIDES = ("ours", "ours-fp32", "ours-int8", "naive")
TARGET_RATIO = 1.5


# --- one side, in its own process ---------------------------------------------------------------------


def run_side(side: str, input_path: str, k: int, threads: int) -> dict:
    import numpy as np
    import scipy.sparse  # noqa: F401 -- libraries both sides use are imported before any clock starts
    import sklearn.cluster  # noqa: F401
    import torch

    torch.set_num_threads(threads)
    rows = [json.loads(line) for line in open(input_path, encoding="utf-8")]
    texts = [r["text"] for r in rows]
    sources = np.array([r["source"] for r in rows])

    from hare_assets.lib.embed import Embedder, default_model_path
    from hare_assets.lib.topics import purity

    started = time.perf_counter()
    if side == "naive":
        from sentence_transformers import SentenceTransformer
        from sklearn.cluster import KMeans

        model = SentenceTransformer(default_model_path())
        loaded = time.perf_counter()
        vectors = model.encode(texts, batch_size=32)
        embedded = time.perf_counter()
        labels = KMeans(n_clusters=k, random_state=0).fit_predict(vectors)
    else:
        from hare_assets.lib.topics import cluster

        embedder = Embedder(quantize=side == "ours-int8", precision="fp32" if side == "ours-fp32" else "auto")
        loaded = time.perf_counter()
        vectors = embedder.embed(texts)
        embedded = time.perf_counter()
        labels = cluster(vectors, k, seed=0).labels
    done = time.perf_counter()
    counts = {s: int((sources == s).sum()) for s in np.unique(sources)}
    balance = np.array([1.0 / counts[s] for s in sources])
    return {
        "side": side,
        "documents": len(texts),
        "load_s": loaded - started,
        "embed_s": embedded - loaded,
        "cluster_s": done - embedded,
        "seconds": done - loaded,
        "docs_per_s": len(texts) / (done - loaded),
        "purity": purity(labels, sources),
        "balanced_purity": purity(labels, sources, sample_weight=balance),
        "clusters": {int(c): int((labels == c).sum()) for c in np.unique(labels)},
        "kernel_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }


# --- the parent ------------------------------------------------------------------------------------------


def export_corpora(data: Path, out: Path, per_source: int | None = None) -> tuple[int, dict[str, int], int]:
    """Every document of the `local-corpora` profile (or `per_source` evenly spaced ones, for a quick
    check), as JSONL {source, text}; returns the document count, counts per source and text bytes."""
    counts: dict[str, int] = {}
    size = 0
    sources, _ = read_corpora(data)
    with open(out, "w", encoding="utf-8") as fh:
        for name, docs in sources:
            if per_source is not None and len(docs) > per_source:
                docs = [docs[i * len(docs) // per_source] for i in range(per_source)]
            for doc in docs:
                fh.write(json.dumps({"source": name, "text": doc["text"]}, ensure_ascii=False) + "\n")
                counts[name] = counts.get(name, 0) + 1
                size += text_bytes(doc["text"])
    return sum(counts.values()), counts, size


def measure(side: str, input_path: Path, k: int, threads: int, workdir: Path) -> dict:
    out = workdir / f"{side}.json"
    threaded = {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")}
    env = {**os.environ, "PYTHONPATH": str(ROOT), **OFFLINE, **threaded}
    cmd = [sys.executable, __file__, "--side", side, "--input", str(input_path), "--k", str(k),
           "--threads", str(threads), "--output", str(out)]
    # the RSS of the child's process tree, every 20 ms (not pinned: --threads sets the parallelism)
    done = run_sampled(cmd, env, workdir / f"{side}.log", cpu=None, interval=0.02, kind="rss")
    if done.returncode != 0:
        raise RuntimeError(f"side {side} failed ({done.returncode}):\n{done.tail(4000)}")
    result = json.loads(out.read_text())
    result["peak_rss_mib"] = max(done.peak_mib, 0.0)
    result["wall_s"] = done.wall_s
    return result


def accelerator_note() -> str:
    import importlib.util

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    vllm = "installed" if importlib.util.find_spec("vllm") else "not installed"
    note = f"GPU: {gpu}; vLLM: {vllm}"
    if gpu == "none":
        note += " -- CPU-only figures; GPU/vLLM throughput is measured separately"
    return note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch, OpenMP and tokenizer threads, same for every side")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--k", type=int, default=None, help="clusters (default: the number of sources)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--per-source", type=int, default=None, help="only this many documents per source (a quick check)")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:  # child mode
        result = run_side(args.side, args.input, args.k, args.threads)
        Path(args.output).write_text(json.dumps(result))
        return

    sides = [s for s in args.sides.split(",") if s]
    unknown = set(sides) - set(SIDES)
    if unknown:
        parser.error(f"unknown sides {sorted(unknown)}; choose from {SIDES}")
    data = Path(args.data or default_data_dir()).resolve()
    if not (data / "corpora").is_dir():
        parser.error(f"no corpora/ under {data} (set --data or HARE_REAL_DATA)")
    with tempfile.TemporaryDirectory(prefix="hare-bench-topics-") as tmp:
        workdir = Path(tmp)
        input_path = workdir / "documents.jsonl"
        n_docs, counts, size = export_corpora(data, input_path, args.per_source)
        k = args.k or len(counts)
        log(f"{n_docs} documents ({size / 1e6:.2f} MB) from {len(counts)} sources {counts}; k={k}; "
            f"{args.threads} threads; {args.runs} run(s) of {sides}")
        runs: dict[str, list[dict]] = {s: [] for s in sides}
        for rep in range(args.runs):
            order = sides if rep % 2 == 0 else sides[::-1]
            for side in order:
                result = measure(side, input_path, k, args.threads, workdir)
                runs[side].append(result)
                log(f"run {rep + 1}/{args.runs} {side}: {result['docs_per_s']:.1f} docs/s "
                    f"(embed {result['embed_s']:.1f} s, cluster {result['cluster_s']:.2f} s), "
                    f"peak RSS {result['peak_rss_mib']:.0f} MiB, purity {result['purity']:.3f} "
                    f"/ balanced {result['balanced_purity']:.3f}")

    med = lambda side, key: statistics.median(r[key] for r in runs[side])  # noqa: E731
    figures = ("docs_per_s", "seconds", "embed_s", "cluster_s", "load_s", "peak_rss_mib", "kernel_max_rss_mib",
               "purity", "balanced_purity")
    medians = {side: {key: med(side, key) for key in figures} for side in sides}
    ratios = {}
    if "naive" in sides:
        for side in sides:
            if side != "naive":
                ratios[side] = {
                    "docs_per_s": medians[side]["docs_per_s"] / medians["naive"]["docs_per_s"],
                    "peak_rss": medians[side]["peak_rss_mib"] / medians["naive"]["peak_rss_mib"],
                }
    note = accelerator_note()

    print(f"\nEmbedding + clustering, {n_docs} documents ({size / 1e6:.2f} MB), k={k}, "
          f"{args.threads} threads, median of {args.runs} run(s)")
    header = f"{'side':<10} {'docs/s':>8} {'embed s':>8} {'cluster s':>9} {'load s':>7} {'peak RSS MiB':>12} {'purity':>7} {'balanced':>8}"
    print(header)
    print("-" * len(header))
    for side in sides:
        m = medians[side]
        print(f"{side:<10} {m['docs_per_s']:>8.1f} {m['embed_s']:>8.1f} {m['cluster_s']:>9.2f} {m['load_s']:>7.1f} "
              f"{m['peak_rss_mib']:>12.0f} {m['purity']:>7.3f} {m['balanced_purity']:>8.3f}")
    for side, r in ratios.items():
        verdict = "meets" if r["docs_per_s"] >= TARGET_RATIO else "MISSES"
        print(f"{side} / naive: throughput x{r['docs_per_s']:.2f} ({verdict} the x{TARGET_RATIO} target), "
              f"peak RSS x{r['peak_rss']:.2f}")
    print(note)

    if args.json:
        Path(args.json).write_text(json.dumps({
            "documents": n_docs, "bytes": size, "sources": counts, "k": k, "threads": args.threads,
            "runs": runs, "medians": medians, "ratios_vs_naive": ratios, "target_ratio": TARGET_RATIO,
            "accelerator": note, "platform": platform.platform(), "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }, indent=2))
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()

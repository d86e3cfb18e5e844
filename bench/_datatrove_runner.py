"""datatrove's side of bench/curate.py; runs in the peers' venv (.venv-bench), never in .venv.

    python bench/_datatrove_runner.py pipeline INPUT_DIR WORK_DIR RESULT_JSON [NGRAM BANDS ROWS [TASKS WORKERS]]
    python bench/_datatrove_runner.py dedup    INPUT_DIR WORK_DIR RESULT_JSON [NGRAM BANDS ROWS [TASKS WORKERS]]

`pipeline`: JsonlReader -> GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter
(default parameters) -> JsonlWriter, then datatrove's four MinHash stages on what the
filters kept. `dedup`: the four MinHash stages on every exported document. MinhashConfig:
5-gram shingles, 14 buckets x 8 hashes unless NGRAM BANDS ROWS say otherwise. Every stage runs on a LocalPipelineExecutor with
workers=1 (in this process, sequentially); tasks=1 everywhere except MinhashDedupBuckets,
which datatrove requires to run as one task per bucket (tasks=14, still workers=1).
TASKS WORKERS (bench/scale.py) run the reading stages as TASKS tasks (one per input file or more) on
WORKERS processes instead. Timings cover the work only; ids are collected into RESULT_JSON after the clock stops.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path

_T0 = time.perf_counter()
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.dedup import (  # noqa: E402
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.dedup.minhash import MinhashConfig  # noqa: E402
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

IMPORT_S = time.perf_counter() - _T0
_SHAPE = [int(x) for x in sys.argv[5:8]] if len(sys.argv) >= 8 else [5, 14, 8]
CONFIG = MinhashConfig(n_grams=_SHAPE[0], num_buckets=_SHAPE[1], hashes_per_bucket=_SHAPE[2])
TASKS, WORKERS = (int(sys.argv[8]), int(sys.argv[9])) if len(sys.argv) >= 10 else (1, 1)


def run(pipeline, logs: Path, tasks: int | None = None) -> float:
    start = time.perf_counter()
    tasks = tasks or TASKS
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(WORKERS, tasks), logging_dir=str(logs)).run()
    return time.perf_counter() - start


def minhash(docs_dir: Path, work: Path, out_dir: Path) -> dict[str, float]:
    """datatrove's 4-stage MinHash dedup of the JSONL files in docs_dir; survivors go to out_dir."""
    return {
        "signatures_s": run([JsonlReader(str(docs_dir)), MinhashDedupSignature(str(work / "sigs"), config=CONFIG)],
                            work / "logs/sigs"),
        "buckets_s": run([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=CONFIG)],
                         work / "logs/buckets", tasks=CONFIG.num_buckets),
        "cluster_s": run([MinhashDedupCluster(str(work / "buckets"), str(work / "remove_ids"), config=CONFIG)],
                         work / "logs/cluster", tasks=1),
        "filter_s": run([JsonlReader(str(docs_dir)), MinhashDedupFilter(str(work / "remove_ids")),
                         JsonlWriter(str(out_dir), compression=None)], work / "logs/filter"),
    }


def read_ids(folder: Path) -> list[str]:
    """Document ids in the order datatrove's reader yields them (the order MinHash indexes refer to)."""
    return [doc.id for doc in JsonlReader(str(folder)).run(None, 0, 1)]


def duplicate_pairs(work: Path, order: list[str]) -> list[list[str]]:
    """Candidate pairs from the .dups files of MinhashDedupBuckets, as ids (read after the clock stops)."""
    pairs = []
    for path in sorted((work / "buckets").glob("*.dups")):
        data = path.read_bytes()
        for f1, d1, f2, d2 in struct.iter_unpack("<4I", data):
            pairs.append([order[d1], order[d2]])
    return pairs


def main() -> None:
    mode, input_dir, work, result_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {"import_s": IMPORT_S}
    start = time.perf_counter()
    if mode == "pipeline":
        timings["clean_s"] = run(
            [JsonlReader(str(input_dir)), GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(),
             JsonlWriter(str(work / "filtered"), compression=None)],
            work / "logs/filters",
        )
        dedup_input = work / "filtered"
    elif mode == "dedup":
        dedup_input = input_dir
    else:
        raise SystemExit(f"unknown mode {mode!r}; use pipeline or dedup")
    t = time.perf_counter()
    stages = minhash(dedup_input, work, work / "deduplicated")
    timings["dedup_s"] = time.perf_counter() - t
    timings.update(stages)
    timings["total_s"] = time.perf_counter() - start

    result: dict = {"side": "datatrove", "mode": mode, "timings": timings,
                    "minhash": {"ngram": CONFIG.n_grams, "bands": CONFIG.num_buckets, "rows": CONFIG.hashes_per_bucket,
                                "seed": CONFIG.seed, "hash": str(CONFIG.hash_config)}}
    all_ids = read_ids(input_dir)
    result["input_docs"] = len(all_ids)
    dedup_in = read_ids(dedup_input) if dedup_input != input_dir else all_ids
    if mode == "pipeline":
        result["clean_kept"] = dedup_in
    kept = read_ids(work / "deduplicated") if (work / "deduplicated").exists() else []
    kept_set = set(kept)
    result["kept"] = kept
    result["dedup_removed"] = [i for i in dedup_in if i not in kept_set]
    result["dedup_pairs"] = duplicate_pairs(work, dedup_in)
    result["pid"] = os.getpid()
    result_path.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()

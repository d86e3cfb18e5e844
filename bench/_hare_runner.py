"""This project's side of bench/curate.py; runs in the project venv (.venv), one process, one core.

    python bench/_hare_runner.py MODE INPUT_DIR WORK_DIR RESULT_JSON [NGRAM BANDS ROWS]

MODE is pipeline, dedup or dedup-noverify.

INPUT_DIR holds the per-source JSONL files that curate.py exported (sorted name order =
profile source order). `pipeline` reads them, runs `clean_frame` per source (profile
local-corpora) and then `deduplicate_frame` across all sources, and writes the kept
documents to Parquet, as the graph does. `dedup` runs only `deduplicate_frame` on every
exported document (no cleaning), for the MinHash-only figures and the agreement check;
`dedup-noverify` is the same with the exact-Jaccard verification of candidates turned off
(the profile keeps it on), to explain where the decisions differ from datatrove's.
NGRAM BANDS ROWS override the profile's MinHash shape (num_perm becomes BANDS*ROWS) so
both sides of the bench hash the same way; threshold, verify, exact and seed stay the
profile's. Timings cover the work only (interpreter start-up and imports are timed separately);
ids and decisions are written to RESULT_JSON after the clock stops.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

_T0 = time.perf_counter()
import polars as pl  # noqa: E402

from hare_assets.lib import schemas  # noqa: E402
from hare_assets.lib.curation import clean_frame, deduplicate_frame  # noqa: E402
from hare_assets.lib.dedup import MinHashParams  # noqa: E402
from hare_assets.lib.profile import load_profile  # noqa: E402

IMPORT_S = time.perf_counter() - _T0
PROFILE = "local-corpora"


def bench_id(source: str, shard: str, row: int, doc_id: str) -> str:
    return f"{doc_id}@{source}/{shard}/{row}"


def ids(frame: pl.DataFrame) -> list[str]:
    return [bench_id(s, sh, r, d) for d, s, sh, r in frame.select("doc_id", "source", "shard", "row").iter_rows()]


def read_input(input_dir: Path) -> dict[str, pl.DataFrame]:
    """One DOCUMENTS frame per source, in file (= profile) order."""
    per_source: dict[str, list[dict]] = {}
    for path in sorted(input_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                md = rec["metadata"]
                per_source.setdefault(md["source"], []).append(
                    {"doc_id": md["doc_id"], "source": md["source"], "shard": md["shard"], "row": md["row"],
                     "text": rec["text"], "meta": md["meta"]}
                )
    return {name: schemas.frame(rows, schemas.DOCUMENTS) for name, rows in per_source.items()}


def main() -> None:
    mode, input_dir, work_dir, result_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    work_dir.mkdir(parents=True, exist_ok=True)
    quiet = lambda _msg: None  # noqa: E731
    profile = load_profile(PROFILE)
    params = MinHashParams.from_profile(profile.dedup)
    profile_shape = {"ngram": params.ngram, "num_perm": params.num_perm, "bands": params.bands, "rows": params.rows}
    if len(sys.argv) >= 8:
        ngram, bands, rows = (int(x) for x in sys.argv[5:8])
        params = dataclasses.replace(params, ngram=ngram, bands=bands, rows=rows, num_perm=bands * rows)
    timings: dict[str, float] = {"import_s": IMPORT_S}
    result: dict = {"side": "hare", "mode": mode, "profile": PROFILE,
                    "minhash": {"ngram": params.ngram, "num_perm": params.num_perm, "bands": params.bands,
                                "rows": params.rows, "threshold": params.threshold, "verify": params.verify,
                                "exact_first": profile.dedup.exact, "seed": params.seed, "profile_default": profile_shape}}

    start = time.perf_counter()
    frames = read_input(input_dir)
    timings["read_s"] = time.perf_counter() - start
    input_docs = sum(f.height for f in frames.values())
    input_bytes = int(sum(f["text"].str.len_bytes().sum() for f in frames.values()))

    if mode == "pipeline":
        # As the graph does: each source is cleaned on its own (a partition) and its raw rows are let go;
        # what crosses to dedup is the kept rows; the removals stay as (id, reason).
        t = time.perf_counter()
        cleaned, clean_kept, clean_removed, clean_quarantined = {}, [], {}, 0
        for name in list(frames):
            c = clean_frame(frames.pop(name), profile, name, log=quiet)
            cleaned[name] = c.kept
            clean_kept += ids(c.kept)
            clean_removed.update(zip(ids(c.removed), c.removed["reason"].to_list()))
            clean_quarantined += c.quarantine.height
            del c
        timings["clean_s"] = time.perf_counter() - t
        t = time.perf_counter()
        dedup = deduplicate_frame(pl.concat([cleaned.pop(s.name) for s in profile.sources if s.name in cleaned], how="vertical"),
                                  profile, params, log=quiet)
        timings["dedup_s"] = time.perf_counter() - t
    elif mode in ("dedup", "dedup-noverify"):
        if mode == "dedup-noverify":
            params = dataclasses.replace(params, verify=False)
            result["minhash"]["verify"] = False
        t = time.perf_counter()
        docs = pl.concat(list(frames.values()), how="vertical").with_columns(
            pl.lit([], dtype=pl.List(pl.String)).alias("edits")  # the column clean_frame adds; empty here
        )
        dedup = deduplicate_frame(docs, profile, params, log=quiet)
        timings["dedup_s"] = time.perf_counter() - t
    else:
        raise SystemExit(f"unknown mode {mode!r}; use pipeline, dedup or dedup-noverify")

    t = time.perf_counter()
    dedup.kept.write_parquet(work_dir / "deduplicated_documents.parquet")
    timings["write_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start

    result["timings"] = timings
    result["input_docs"] = input_docs
    result["input_bytes"] = input_bytes
    if mode == "pipeline":
        result["clean_kept"] = clean_kept
        result["clean_removed"] = clean_removed
        result["clean_quarantined"] = clean_quarantined
    result["kept"] = ids(dedup.kept)
    removed = dedup.removed
    result["dedup_removed"] = ids(removed)
    result["dedup_pairs"] = [
        [rid, bench_id(s, sh, r, d)]
        for rid, (d, s, sh, r) in zip(ids(removed), removed.select("kept_doc_id", "kept_source", "kept_shard", "kept_row").iter_rows())
    ]
    result["dedup_reasons"] = removed["reason"].value_counts().to_dicts() if removed.height else []
    result_path.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()

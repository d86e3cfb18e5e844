"""`hare dedup`: the graph's exact + MinHash dedup on arbitrary files, outside Dagster, in bounded memory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from hare_assets.lib.dedup import EXACT, NEAR, MinHashParams, _permutation_seeds, signature_rows
from hare_assets.lib.dedup_engine import SIGNATURES, DuckDBLimits, decide, ingest_order
from hare_assets.lib.profile import DedupConfig, SourceConfig
from hare_assets.lib.readers import ShardResult, iter_shard

_SUFFIXES = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
    ".gz": "jsonl.gz", ".zst": "jsonl.zst", ".zstd": "jsonl.zst",
    ".parquet": "parquet", ".txt": "txt", ".tsv": "tsv", ".csv": "csv",
}


def infer_format(path: Path) -> str | None:
    return _SUFFIXES.get(path.suffix.lower())


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, folders walked in sorted order; unknown suffixes inside folders are skipped."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and infer_format(p))
        elif path.is_file():
            if infer_format(path) is None:
                raise ValueError(f"{path}: unknown format; use .jsonl[.gz|.zst], .parquet, .txt, .tsv or .csv")
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return files


def iter_documents(
    paths: list[Path], quarantined: list[dict], text_field: str = "text", columns: list[str] | None = None,
    max_doc_bytes: int = 64_000_000,
) -> Iterator[tuple[int, Path, ShardResult]]:
    """(file index, file, a batch of its records) for files or folders, through the graph's streaming readers, so
    `hare dedup` and `hare scan` read exactly what a source of that format would, in bounded memory. Unreadable
    records are appended to `quarantined` as {file, row, reason, detail}."""
    for index, file in enumerate(expand(paths)):
        source = SourceConfig(
            name="files", format=infer_format(file), path=str(file), text_field=text_field,
            has_header=columns is None, columns=columns,
        )
        for batch in iter_shard(source, file.name, max_doc_bytes):
            quarantined.extend({"file": str(file), "row": q["row"], "reason": q["reason"], "detail": q["detail"]}
                               for q in batch.quarantine)
            yield index, file, batch


def dedup_paths(
    paths: list[Path],
    text_field: str = "text",
    columns: list[str] | None = None,
    ngram: int = 5,
    num_perm: int = 100,
    threshold: float = 0.7,
    bands: int | None = 20,
    rows: int | None = 5,
    max_doc_bytes: int = 64_000_000,
    memory_limit: str = "1GB",
) -> dict:
    """The graph's dedup on files: signatures and texts go to a temporary folder batch by batch, and the
    out-of-core engine decides (first file, then first row, wins), so memory does not grow with the input."""
    params = MinHashParams.from_profile(
        DedupConfig(ngram=ngram, num_perm=num_perm, threshold=threshold, bands=bands or None, rows=rows if bands else None)
    )
    seeds = _permutation_seeds(params)
    quarantined: list[dict] = []
    files, documents = set(), 0
    with tempfile.TemporaryDirectory(prefix="hare-dedup-files-") as work:
        signature_files, text_files = [], []
        for i, (index, file, batch) in enumerate(iter_documents(paths, quarantined, text_field, columns, max_doc_bytes)):
            files.add(index)
            if not batch.docs:
                continue
            texts, rows_ = [d["text"] for d in batch.docs], [d["row"] for d in batch.docs]
            where = {"source": "files", "shard": str(file), "row": rows_}
            pl.DataFrame({"ord": [ingest_order(index, 0, r) for r in rows_], "block": "files", **where,
                          "doc_id": [d["doc_id"] for d in batch.docs], **signature_rows(texts, params, seeds)},
                         schema=SIGNATURES).write_parquet(f"{work}/signatures-{i:06d}.parquet")
            pl.DataFrame({**where, "text": texts}).write_parquet(f"{work}/texts-{i:06d}.parquet")
            signature_files.append(f"{work}/signatures-{i:06d}.parquet")
            text_files.append(f"{work}/texts-{i:06d}.parquet")
            documents += len(texts)
        decisions, _ = decide(signature_files, text_files, params, True, DuckDBLimits(memory_limit=memory_limit, threads=os.cpu_count() or 1),
                              log=lambda _: None)
    return {
        "files": len(files),
        "documents": documents,
        "duplicates_removed": decisions.height,
        "exact_duplicates": int((decisions["reason"] == EXACT).sum()),
        "near_duplicates": int((decisions["reason"] == NEAR).sum()),
        "params": {"ngram": params.ngram, "num_perm": params.num_perm, "bands": params.bands, "rows": params.rows, "threshold": params.threshold},
        "clusters": [
            {"kept": {"file": d["kept_shard"], "row": d["kept_row"]}, "removed": {"file": d["shard"], "row": d["row"]},
             "reason": d["reason"], "similarity": round(d["similarity"], 4)}
            for d in decisions.iter_rows(named=True)
        ],
        "quarantined": quarantined,
    }

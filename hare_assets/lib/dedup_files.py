"""`hare dedup`: the graph's exact + MinHash dedup on arbitrary files, outside Dagster."""

from __future__ import annotations

from pathlib import Path

from hare_assets.lib.dedup import EXACT, NEAR, MinHashParams, find_duplicates
from hare_assets.lib.profile import DedupConfig, SourceConfig
from hare_assets.lib.readers import read_shard

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


def read_documents(
    paths: list[Path], text_field: str = "text", columns: list[str] | None = None, max_doc_bytes: int = 64_000_000
) -> tuple[list[Path], list[str], list[dict], list[dict]]:
    """(files, texts, where each text is as {file, row}, unreadable records) of files or folders, through
    the graph's readers, so `hare dedup` and `hare scan` read exactly what a source of that format would."""
    files = expand(paths)
    texts, where, quarantined = [], [], []
    for file in files:
        source = SourceConfig(
            name="files", format=infer_format(file), path=str(file), text_field=text_field,
            has_header=columns is None, columns=columns,
        )
        result = read_shard(source, file.name, max_doc_bytes)
        for doc in result.docs:
            texts.append(doc["text"])
            where.append({"file": str(file), "row": doc["row"]})
        quarantined.extend({"file": str(file), "row": q["row"], "reason": q["reason"], "detail": q["detail"]} for q in result.quarantine)
    return files, texts, where, quarantined


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
) -> dict:
    files, texts, where, quarantined = read_documents(paths, text_field, columns, max_doc_bytes)
    params = MinHashParams.from_profile(
        DedupConfig(ngram=ngram, num_perm=num_perm, threshold=threshold, bands=bands or None, rows=rows if bands else None)
    )
    duplicates = find_duplicates(texts, params)
    return {
        "files": len(files),
        "documents": len(texts),
        "duplicates_removed": len(duplicates),
        "exact_duplicates": sum(d.reason == EXACT for d in duplicates),
        "near_duplicates": sum(d.reason == NEAR for d in duplicates),
        "params": {"ngram": params.ngram, "num_perm": params.num_perm, "bands": params.bands, "rows": params.rows, "threshold": params.threshold},
        "clusters": [
            {"kept": where[d.kept], "removed": where[d.removed], "reason": d.reason, "similarity": round(d.similarity, 4)}
            for d in duplicates
        ],
        "quarantined": quarantined,
    }

"""Frame-level curation shared by the assets, `hare dedup` and bench/: clean one source, dedup many."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from hare_assets.lib import schemas
from hare_assets.lib.dedup import MinHashParams, find_duplicates
from hare_assets.lib.profile import Profile
from hare_assets.lib.text_rules import clean_document

RULE_ERROR = "rule_error"


@dataclass
class CleanResult:
    kept: pl.DataFrame
    removed: pl.DataFrame
    quarantine: pl.DataFrame
    edit_counts: dict[str, int]


def clean_frame(raw: pl.DataFrame, profile: Profile, source: str, log: Callable[[str], None] = print) -> CleanResult:
    """Run the D1 rules over one source's documents. A rule that crashes on a row quarantines that row."""
    src = profile.source(source)
    quality = profile.quality_for(source)
    kept, removed, quarantine = [], [], []
    edits: Counter[str] = Counter()
    total = raw.height
    for i, row in enumerate(raw.iter_rows(named=True), 1):
        try:
            result = clean_document(row["text"], profile.clean, quality, src.boilerplate, src.detokenize)
        except Exception as exc:  # a bug or a pathological text must not sink the partition
            quarantine.append({k: row[k] for k in ("source", "shard", "row")}
                              | {"reason": RULE_ERROR, "detail": f"{type(exc).__name__}: {exc}", "raw": row["text"][:500]})
            continue
        edits.update(result.edits)
        out = {**row, "text": result.text, "edits": result.edits}
        if result.reason is None:
            kept.append(out)
        else:
            removed.append({**out, "text": row["text"], "reason": result.reason, "detail": result.detail})
        if i % 5000 == 0:
            log(f"{source}: cleaned {i}/{total} documents, kept {len(kept)}")
    return CleanResult(
        kept=schemas.frame(kept, schemas.CLEAN_DOCUMENTS),
        removed=schemas.frame(removed, schemas.REMOVED),
        quarantine=schemas.frame(quarantine, schemas.QUARANTINE),
        edit_counts=dict(sorted(edits.items())),
    )


@dataclass
class DedupResult:
    kept: pl.DataFrame
    removed: pl.DataFrame


def stable_order(docs: pl.DataFrame, source_order: list[str]) -> pl.DataFrame:
    """Profile source order, then shard, then row: the order that decides which duplicate is kept."""
    rank = {name: i for i, name in enumerate(source_order)}
    return (
        docs.with_columns(pl.col("source").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_rank"))
        .sort(["_rank", "shard", "row"])
        .drop("_rank")
    )


def deduplicate_frame(
    docs: pl.DataFrame, profile: Profile, params: MinHashParams, log: Callable[[str], None] = print
) -> DedupResult:
    """Exact then near-duplicate removal across sources; each removed row names the row it duplicates."""
    ordered = stable_order(docs, [s.name for s in profile.sources])
    texts = ordered["text"].to_list()
    log(f"deduplicating {ordered.height} documents (MinHash {params.bands}x{params.rows}, {params.ngram}-grams)")
    duplicates = find_duplicates(texts, params, exact=profile.dedup.exact,
                                 progress=lambda done, total: log(f"signatures: {done}/{total}"))
    removed_idx = [d.removed for d in duplicates]
    kept_idx = [d.kept for d in duplicates]
    targets = ordered[kept_idx].select(
        pl.col("doc_id").alias("kept_doc_id"), pl.col("source").alias("kept_source"),
        pl.col("shard").alias("kept_shard"), pl.col("row").alias("kept_row"),
    )
    removed = pl.concat(
        [
            ordered[removed_idx],
            pl.DataFrame({"reason": [d.reason for d in duplicates], "similarity": [d.similarity for d in duplicates]},
                         schema={"reason": pl.String, "similarity": pl.Float64}),
            targets,
        ],
        how="horizontal",
    ).with_columns(
        pl.format("{} of {}/{}#{}", pl.col("reason"), pl.col("kept_source"), pl.col("kept_shard"), pl.col("kept_row")).alias("detail")
    ).select(list(schemas.DUPLICATES))
    mask = pl.Series([True] * ordered.height)
    if removed_idx:
        mask = mask.scatter(removed_idx, False)
    return DedupResult(kept=ordered.filter(mask), removed=removed.cast(schemas.DUPLICATES))

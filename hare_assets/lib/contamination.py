"""Decontamination of a dataset table, and the lineage of what it removed.

`decontaminate(frame, index, rule, dataset)` scans every row's text against the benchmark
n-gram index (`lib/decontam.py`) and acts on each row with hits:

- `removed`: its rate reaches the rule (HARE: the sample is mostly benchmark text; or any hit in
  strict mode), reason `benchmark_contamination` with the worst item named in `detail`;
- `excised`: it holds at least `min_item_share` of an item (a test question and its answer quoted
  in a longer page, or a sentence the item was written from) — the matched stretches are cut out
  to their sentence boundaries, as GPT-3's filtering cut a window around each collision, and the
  rest of the document is kept (edit `benchmark_excised`); if too little is left, it is removed;
- `kept`: hits below the rule, recorded only.

One hit row per (document, benchmark item) carries the document's provenance: `doc_id`,
`source`, `shard`, `row`, and for synthetic rows their `topic` and `seed_doc_ids`.
`root_documents` follows `seed_doc_ids` from D3 to D2 to D1, so a contaminated synthetic row
can be traced to the source shards of the documents it was generated from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import re

import polars as pl

from hare_assets.lib.decontam import DecontamRule, NgramIndex, scan, scan_batch
from hare_assets.lib.profile import IntegrityConfig, RuleConfig

REASON = "benchmark_contamination"
HITS = {
    "dataset": pl.String,  # d1 | d2 | d3
    "doc_id": pl.String,
    "source": pl.String,
    "shard": pl.String,
    "row": pl.Int64,
    "topic": pl.String,
    "seed_doc_ids": pl.List(pl.String),
    "benchmark": pl.String,
    "split": pl.String,
    "item_id": pl.String,
    "matched_ngrams": pl.Int64,
    "item_share": pl.Float64,  # share of the item's best view found in the document
    "rate": pl.Float64,  # the document's rate under the dataset's rule (all its items together)
    "action": pl.String,  # removed | excised | kept
}
EXCISED = "benchmark_excised"
_BOUNDARY = re.compile(r"[.!?\n]")
_WINDOW = 200  # characters searched for a sentence boundary around an excised stretch


def rule_for(integrity: IntegrityConfig, dataset: str) -> DecontamRule:
    """The dataset's rule from the profile; `strict: true` turns every dataset to any-hit removal."""
    cfg: RuleConfig = getattr(integrity, dataset)
    return DecontamRule(n=cfg.n, rate="strict" if integrity.strict else cfg.rate, threshold=cfg.threshold, bridge=cfg.bridge,
                        min_item_share=cfg.min_item_share)


def index_sizes(integrity: IntegrityConfig) -> list[int]:
    """The n-gram sizes the index must hold: one per distinct rule n."""
    return sorted({rule_for(integrity, d).n for d in ("d1", "d2", "d3")})


@dataclass(frozen=True)
class Decontaminated:
    kept: pl.DataFrame
    removed: pl.DataFrame  # the input's columns + reason + detail
    hits: pl.DataFrame  # HITS
    rates: pl.Series  # per input row


def excise(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` without the character spans, each widened to the sentence (or line) around it."""
    pieces, at = [], 0
    for a, b in sorted(spans):
        left = max((m.end() for m in _BOUNDARY.finditer(text, max(0, a - _WINDOW), a)), default=max(at, a - _WINDOW))
        right = next((m.end() for m in _BOUNDARY.finditer(text, b, b + _WINDOW)), min(len(text), b + _WINDOW))
        pieces.append(text[at:max(at, left)])
        at = max(at, right)
    pieces.append(text[at:])
    return re.sub(r"\n{3,}", "\n\n", "".join(pieces)).strip()


def decontaminate(frame: pl.DataFrame, index: NgramIndex, rule: DecontamRule, dataset: str) -> Decontaminated:
    """Split `frame` (a documents table with `text` and provenance columns) by the rule (see the module docstring)."""
    batch = scan_batch(frame["text"].to_list(), index, rule)
    texts = frame["text"].to_list()
    edits = frame["edits"].to_list() if "edits" in frame.columns else None
    removed = [False] * frame.height
    details = [""] * frame.height
    hit_rows = []
    has_topic, has_seeds = "topic" in frame.columns, "seed_doc_ids" in frame.columns
    for i, hits in batch.hits.items():
        rate = float(batch.rates[i])
        worst = max(hits, key=lambda h: (h.item_share, h.matched_ngrams))
        action = "kept"
        if rate > 0 and (rule.rate == "strict" or rate >= rule.threshold):
            action = "removed"
        elif rule.fires(rate, hits):  # an item quoted inside: cut it out, keep the rest if enough is left
            words = len(texts[i].split())
            cut = excise(texts[i], list(scan(texts[i], index).spans))
            if len(cut.split()) >= max(2 * rule.n, words // 2) and not rule.fires(*_rescan(cut, index, rule)):
                texts[i] = cut
                if edits is not None:
                    edits[i] = [*(edits[i] or []), EXCISED]
                action = "excised"
            else:
                action = "removed"
        if action == "removed":
            removed[i] = True
            more = f" and {len(hits) - 1} more item(s)" if len(hits) > 1 else ""
            details[i] = (f"{rule.rate} {rate:.2f} (threshold {rule.threshold}) at n={rule.n}; holds {worst.item_share:.0%} of "
                          f"{worst.benchmark} {worst.split} {worst.item_id} ({worst.matched_ngrams} n-grams){more}")
        row = frame.row(i, named=True)
        for h in hits:
            hit_rows.append({
                "dataset": dataset, "doc_id": row["doc_id"], "source": row["source"], "shard": row["shard"], "row": row["row"],
                "topic": row["topic"] if has_topic else None, "seed_doc_ids": row["seed_doc_ids"] if has_seeds else None,
                "benchmark": h.benchmark, "split": h.split, "item_id": h.item_id, "matched_ngrams": h.matched_ngrams,
                "item_share": h.item_share, "rate": rate, "action": action,
            })
    gone = pl.Series("removed", removed, dtype=pl.Boolean)  # typed: an empty partition (no D2 survived) is a frame too
    edited = frame.with_columns(pl.Series("text", texts, dtype=pl.String))
    if edits is not None:
        edited = edited.with_columns(pl.Series("edits", edits, dtype=frame.schema["edits"]))
    return Decontaminated(
        kept=edited.filter(~gone),
        removed=frame.filter(gone).with_columns(pl.lit(REASON).alias("reason"), pl.Series("detail", details, dtype=pl.String).filter(gone)),
        hits=pl.DataFrame(hit_rows, schema=HITS),
        rates=pl.Series("rate", batch.rates),
    )


def _rescan(text: str, index: NgramIndex, rule: DecontamRule) -> tuple[float, tuple]:
    one = scan_batch([text], index, rule)
    return float(one.rates[0]), one.hits.get(0, ())


def contamination_matrix(hits: pl.DataFrame) -> pl.DataFrame:
    """Documents with hits per benchmark × dataset × source × topic (removed and excised ones counted apart)."""
    if hits.is_empty():
        return pl.DataFrame(schema={"benchmark": pl.String, "dataset": pl.String, "source": pl.String, "topic": pl.String,
                                    "documents": pl.UInt32, "removed": pl.UInt32, "excised": pl.UInt32, "items": pl.UInt32})
    return (
        hits.group_by("benchmark", "dataset", "source", "topic")
        .agg(
            pl.col("doc_id").n_unique().alias("documents"),
            pl.col("doc_id").filter(pl.col("action") == "removed").n_unique().alias("removed"),
            pl.col("doc_id").filter(pl.col("action") == "excised").n_unique().alias("excised"),
            pl.col("item_id").n_unique().alias("items"),
        )
        .sort("benchmark", "dataset", "source", "topic", nulls_last=True)
    )


def root_documents(doc_ids: Iterable[str], tables: Iterable[pl.DataFrame], max_depth: int = 4) -> pl.DataFrame:
    """(doc_id, root_doc_id, root_source, root_shard, root_row): for each doc, the D1 documents it
    descends from through `seed_doc_ids` (itself when it is a D1 document). `tables` hold
    doc_id, source, shard, row and, for synthetic rows, seed_doc_ids."""
    nodes = pl.concat(
        [t.select("doc_id", "source", "shard", "row",
                  (pl.col("seed_doc_ids") if "seed_doc_ids" in t.columns else pl.lit(None, dtype=pl.List(pl.String))).alias("seeds"))
         for t in tables],
        how="vertical",
    ).unique("doc_id", keep="first")
    known = nodes.select(pl.col("doc_id").alias("parent"))
    frontier = pl.DataFrame({"doc_id": list(doc_ids)}, schema={"doc_id": pl.String}).with_columns(pl.col("doc_id").alias("at"))
    roots = []
    for _ in range(max_depth + 1):
        step = frontier.join(nodes.rename({"doc_id": "at"}), on="at", how="inner")
        parents = (step.select("doc_id", "at", pl.col("seeds").alias("parent")).explode("parent")
                   .join(known, on="parent", how="semi"))  # seeds outside the tables (raw task records) end the walk
        leaf = step.join(parents.select("doc_id", "at").unique(), on=["doc_id", "at"], how="anti")
        roots.append(leaf.select("doc_id", pl.col("at").alias("root_doc_id"), pl.col("source").alias("root_source"),
                                 pl.col("shard").alias("root_shard"), pl.col("row").alias("root_row")))
        frontier = parents.select("doc_id", pl.col("parent").alias("at")).unique()
        if frontier.is_empty():
            break
    return pl.concat(roots).unique(maintain_order=True)

"""Column layouts shared by every stage, so provenance columns never drift between tables."""

import polars as pl

PROVENANCE = {"doc_id": pl.String, "source": pl.String, "shard": pl.String, "row": pl.Int64}
DOCUMENTS = {**PROVENANCE, "text": pl.String, "meta": pl.String}
CLEAN_DOCUMENTS = {**DOCUMENTS, "edits": pl.List(pl.String)}
REMOVED = {**CLEAN_DOCUMENTS, "reason": pl.String, "detail": pl.String}
QUARANTINE = {"source": pl.String, "shard": pl.String, "row": pl.Int64, "reason": pl.String, "detail": pl.String, "raw": pl.String}
DUPLICATES = {
    **REMOVED,
    "kept_doc_id": pl.String,
    "kept_source": pl.String,
    "kept_shard": pl.String,
    "kept_row": pl.Int64,
    "similarity": pl.Float64,
}
EMBEDDINGS = {"doc_id": pl.String, "model": pl.String, "embedding": pl.List(pl.Float32)}
# A document's token ids without <s>/</s>, and its count with them (what the mixture budgets and packing adds).
TOKENS = {"doc_id": pl.String, "tokens": pl.Int64, "ids": pl.List(pl.UInt32)}


def frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    """Rows to a frame with exactly `schema`'s columns and types (also when there are no rows)."""
    return pl.DataFrame([{k: row.get(k) for k in schema} for row in rows], schema=schema)

# D2/D3 rows: lineage to the topic and the seed documents, and to the generator and prompt that made them.
SYNTHETIC = {
    **CLEAN_DOCUMENTS,
    "topic": pl.String,
    "seed_doc_ids": pl.List(pl.String),
    "generator": pl.String,
    "prompt_version": pl.String,
}
SYNTHETIC_REMOVED = {**SYNTHETIC, "reason": pl.String, "detail": pl.String}
TOPIC_DOCUMENTS = {**CLEAN_DOCUMENTS, "topic": pl.String, "similarity": pl.Float32, "weight": pl.Float64}

"""Metadata shapes the UI shows for every stage: per-reason tables with an example each, tables, plots."""

import base64

import dagster as dg
import polars as pl

_REASON_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("reason", "string"),
        dg.TableColumn("rows", "int"),
        dg.TableColumn("example", "string", description="source/shard#row of the first such row"),
        dg.TableColumn("detail", "string", description="why that example was caught"),
        dg.TableColumn("excerpt", "string", description="the start of that example's text, where the rows keep it"),
    ]
)


def reason_table(rows: pl.DataFrame) -> dg.TableMetadataValue:
    """One line per reason: how many rows, and the first example with its detail (and the start of its text, so a
    removed model reply can be read in the UI)."""
    if rows.is_empty():
        return dg.MetadataValue.table(records=[], schema=_REASON_SCHEMA)
    text = pl.first("text") if "text" in rows.columns else pl.lit(None, dtype=pl.String).alias("text")
    summary = (
        rows.group_by("reason", maintain_order=True)
        .agg(pl.len().alias("rows"), pl.first("source"), pl.first("shard"), pl.first("row"), pl.first("detail"), text)
        .sort(["rows", "reason"], descending=[True, False])
    )
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "reason": r["reason"],
                    "rows": r["rows"],
                    "example": f"{r['source']}/{r['shard']}#{r['row']}",
                    "detail": (r["detail"] or "")[:200],
                    "excerpt": (r["text"] or "")[:200],
                }
            )
            for r in summary.iter_rows(named=True)
        ],
        schema=_REASON_SCHEMA,
    )


def count_table(counts: dict[str, int], key: str) -> dg.MarkdownMetadataValue:
    lines = [f"| {key} | rows |", "|---|---:|", *(f"| {k} | {v} |" for k, v in sorted(counts.items()))]
    return dg.MetadataValue.md("\n".join(lines))


def frame_markdown(frame: pl.DataFrame) -> dg.MarkdownMetadataValue:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *body]))


def png_markdown(png: bytes, alt: str) -> dg.MarkdownMetadataValue:
    """A plot inline in the asset's metadata (the UI renders data: URLs in markdown)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")

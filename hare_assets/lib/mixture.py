"""Training mixtures: a token budget split between D1/D2/D3 and within them, sampled reproducibly.

HARE trains in two stages: stage 1 on D1 alone, stage 2 on D1 + D2 + D3 (46.5 / 13.63 /
39.87 %). A stage's budget is split between datasets by weight; D1's share is split between
its sources by their `weight`, D2 (topics) and D3 (tasks) are each one pool. A pool smaller
than its share is repeated: whole passes in a seeded order, then a seeded partial pass until the
share is reached (at most `max_repeats` passes; a shortfall is reported, never hidden). The
order of a pass depends only on (seed, group, pass, doc_id), not on the order rows arrive in,
so the same inputs give the same mixture. The selected samples are finally shuffled together
(seeded), which is the order packing reads them in.

Token counts include the `<s>` and `</s>` that packing adds around every document. A pool may bring
them in a `tokens` column (D1 does, from its per-block token cache, and then needs no text);
otherwise its texts are tokenized here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl
import xxhash

from hare_assets.lib.tokenizer import token_counts

# The columns a pool must have, and `text` or `tokens`; synthetic pools also carry topic and seed_doc_ids.
POOL_COLUMNS = ("doc_id", "source", "shard", "row")
MIXTURE = {
    "dataset": pl.String,
    "group": pl.String,  # D1: the source; D2/D3: the dataset
    "doc_id": pl.String,
    "source": pl.String,
    "shard": pl.String,
    "row": pl.Int64,
    "topic": pl.String,
    "seed_doc_ids": pl.List(pl.String),
    "text": pl.String,
    "tokens": pl.Int64,
    "epoch": pl.Int32,  # which pass over its group this sample comes from (0: first)
    "position": pl.Int64,  # order in the packed stream
}
MANIFEST_KEYS = ("dataset", "source", "shard", "topic")


@dataclass(frozen=True)
class GroupPlan:
    dataset: str
    group: str
    weight: float
    target_tokens: int
    available_tokens: int
    documents: int
    selected_tokens: int = 0
    samples: int = 0
    passes: float = 0.0

    @property
    def shortfall(self) -> int:
        return max(0, self.target_tokens - self.selected_tokens)


@dataclass
class Mixture:
    samples: pl.DataFrame  # MIXTURE, sorted by position
    plan: list[GroupPlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def manifest(self) -> pl.DataFrame:
        """Tokens, samples and distinct documents per dataset, source, shard and topic."""
        return manifest(self.samples)

    def plan_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            [{"dataset": g.dataset, "group": g.group, "weight": round(g.weight, 4), "target_tokens": g.target_tokens,
              "available_tokens": g.available_tokens, "documents": g.documents, "selected_tokens": g.selected_tokens,
              "samples": g.samples, "passes": round(g.passes, 2), "shortfall": g.shortfall} for g in self.plan]
        )


def manifest(samples: pl.DataFrame) -> pl.DataFrame:
    return (
        samples.group_by(*MANIFEST_KEYS)
        .agg(pl.col("tokens").sum(), pl.len().alias("samples"), pl.col("doc_id").n_unique().alias("documents"))
        .sort(*MANIFEST_KEYS, nulls_last=True)
    )


def _key(seed: int, *parts: object) -> int:
    return xxhash.xxh3_64_intdigest(":".join(map(str, (seed, *parts))).encode())


def _pool(frame: pl.DataFrame, dataset: str, tokenizer: str | None) -> pl.DataFrame:
    """A dataset's rows with the MIXTURE columns (topic/seeds null where a dataset has none) and token counts."""
    missing = [c for c in POOL_COLUMNS if c not in frame.columns] + ([] if {"text", "tokens"} & set(frame.columns) else ["text"])
    if missing:
        raise ValueError(f"{dataset}: rows lack columns {missing}")

    def optional(column: str, dtype: pl.DataType) -> pl.Expr:
        return (pl.col(column) if column in frame.columns else pl.lit(None, dtype=dtype)).alias(column)

    out = frame.select(pl.lit(dataset).alias("dataset"), *POOL_COLUMNS, optional("text", pl.String),
                       optional("topic", pl.String), optional("seed_doc_ids", pl.List(pl.String)), optional("tokens", pl.Int64))
    if "tokens" not in frame.columns:
        counts = token_counts(out["text"].to_list(), tokenizer)
        out = out.with_columns(pl.Series("tokens", [c + 2 for c in counts], dtype=pl.Int64))
    return out.filter(pl.col("tokens") > 2)


def _take(pool: pl.DataFrame, target: int, seed: int, group: str, max_repeats: float) -> tuple[pl.DataFrame, float]:
    """Samples of `pool` totalling at least `target` tokens (fewer if `max_repeats` passes are not enough)."""
    total = int(pool["tokens"].sum())
    if total == 0 or target <= 0:
        return pool.clear().with_columns(pl.lit(0, dtype=pl.Int32).alias("epoch")), 0.0
    passes = target / total
    full = min(int(passes), int(max_repeats))
    chunks = []
    for epoch in range(full + (1 if full < max_repeats and passes > full else 0)):
        order = pool.with_columns(
            pl.col("doc_id").map_elements(lambda d, e=epoch: _key(seed, group, e, d), return_dtype=pl.UInt64).alias("_k"),
            pl.lit(epoch, dtype=pl.Int32).alias("epoch"),
        ).sort("_k", "doc_id")
        if epoch == full:  # the partial pass: stop at the first sample that reaches the target
            need = target - full * total
            cum = order["tokens"].cum_sum()
            order = order.head(int((cum < need).sum()) + 1)
        chunks.append(order.drop("_k"))
    taken = pl.concat(chunks)
    return taken, int(taken["tokens"].sum()) / total


def build_mixture(
    pools: dict[str, pl.DataFrame],
    budget: int,
    dataset_weights: dict[str, float],
    source_weights: dict[str, float],
    seed: int = 0,
    max_repeats: float = 16.0,
    tokenizer: str | None = None,
) -> Mixture:
    """Select samples for one stage. `pools` maps d1/d2/d3 to their (decontaminated) rows; `tokenizer`
    counts the tokens of pools that bring no `tokens` column."""
    weights = {d: w for d, w in dataset_weights.items() if w > 0}
    empty = [d for d in weights if d not in pools or pools[d].is_empty()]
    if empty:
        raise ValueError(f"the mixture gives weight to {empty} but they hold no rows; materialize them or set their weight to 0")
    plan: list[GroupPlan] = []
    chunks: list[pl.DataFrame] = []
    warnings: list[str] = []
    total_weight = sum(weights.values())
    for dataset, weight in weights.items():
        share = budget * weight / total_weight
        pool = _pool(pools[dataset], dataset, tokenizer)
        if dataset == "d1":
            sources = sorted(pool["source"].unique().to_list())
            sw = {s: source_weights.get(s, 1.0) for s in sources}
            sw_total = sum(sw.values()) or 1.0
            groups = [(s, pool.filter(pl.col("source") == s), share * sw[s] / sw_total, weight * sw[s] / sw_total) for s in sources]
        else:
            groups = [(dataset, pool, share, weight)]
        for group, rows, target, w in groups:
            target = int(math.ceil(target))
            taken, passes = _take(rows, target, seed, group, max_repeats)
            g = GroupPlan(dataset, group, w / total_weight, target, int(rows["tokens"].sum()), rows.height,
                          int(taken["tokens"].sum()) if taken.height else 0, taken.height, passes)
            if g.shortfall:
                warnings.append(f"{dataset}/{group}: {g.available_tokens:,} tokens available, {target:,} wanted; "
                                f"capped at {max_repeats:g} passes, {g.shortfall:,} tokens short")
            plan.append(g)
            chunks.append(taken.with_columns(pl.lit(group).alias("group")))
    samples = pl.concat(chunks, how="vertical")
    samples = (
        samples.with_columns(
            pl.struct("group", "epoch", "doc_id").map_elements(
                lambda r: _key(seed, "order", r["group"], r["epoch"], r["doc_id"]), return_dtype=pl.UInt64).alias("_k"))
        .sort("_k", "doc_id", "epoch")
        .drop("_k")
        .with_row_index("position")
        .with_columns(pl.col("position").cast(pl.Int64))
    )
    return Mixture(samples.select(list(MIXTURE)).cast(MIXTURE), plan, warnings)

import polars as pl
import pytest

from hare_assets.lib.mixture import build_mixture
from hare_assets.lib.tokenizer import token_counts

WORDS = "river orchard lantern harbour meadow violin comet pastry garden engine".split()


def docs(prefix: str, n: int, words: int, source: str | None = None, topic: str | None = None) -> pl.DataFrame:
    texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)) + f" {prefix}{i}." for i in range(n)]
    frame = pl.DataFrame({
        "doc_id": [f"{prefix}{i}" for i in range(n)], "source": [source or prefix] * n, "shard": [f"{prefix}.jsonl"] * n,
        "row": list(range(n)), "text": texts,
    })
    if topic is not None:
        frame = frame.with_columns(pl.lit(topic).alias("topic"), pl.lit([f"seed-{prefix}"]).alias("seed_doc_ids"))
    return frame


@pytest.fixture(scope="module")
def pools():
    return {
        "d1": pl.concat([docs("web", 60, 40), docs("book", 6, 300)]),
        "d2": docs("syn", 10, 80, source="synthetic", topic="topic-000"),
        "d3": docs("task", 16, 40, source="task:qa", topic="topic-001"),
    }


def test_shares_follow_the_weights_and_small_datasets_repeat(pools):
    mix = build_mixture(pools, 20_000, {"d1": 46.5, "d2": 13.63, "d3": 39.87}, {"web": 1.0, "book": 1.0})
    tokens = mix.samples.group_by("dataset").agg(pl.col("tokens").sum()).sort("dataset")
    share = dict(zip(tokens["dataset"], (tokens["tokens"] / tokens["tokens"].sum()).to_list()))
    assert share == pytest.approx({"d1": 0.465, "d2": 0.1363, "d3": 0.3987}, abs=0.01)
    d3 = mix.samples.filter(pl.col("dataset") == "d3")
    assert d3["epoch"].max() >= 5  # 16 short tasks stretched to ~8k tokens: many passes
    assert d3.group_by("doc_id").len()["len"].min() >= 5  # every task used in every full pass
    assert not mix.warnings
    # the token counts include <s> and </s>
    expected = {d: c + 2 for d, c in zip(pools["d3"]["doc_id"], token_counts(pools["d3"]["text"].to_list()))}
    assert all(t == expected[d] for d, t in zip(d3["doc_id"], d3["tokens"]))


def test_source_weights_split_d1(pools):
    mix = build_mixture({"d1": pools["d1"]}, 10_000, {"d1": 1.0}, {"web": 3.0, "book": 1.0})
    per = mix.samples.group_by("source").agg(pl.col("tokens").sum())
    got = dict(zip(per["source"], per["tokens"]))
    assert got["web"] / (got["web"] + got["book"]) == pytest.approx(0.75, abs=0.03)


def test_same_inputs_in_any_order_give_the_same_mixture(pools):
    weights = {"d1": 1.0, "d2": 1.0, "d3": 1.0}
    a = build_mixture(pools, 12_000, weights, {}, seed=7).samples
    shuffled = {k: v.sample(fraction=1.0, shuffle=True, seed=3) for k, v in pools.items()}
    b = build_mixture(shuffled, 12_000, weights, {}, seed=7).samples
    assert a.select("dataset", "doc_id", "epoch", "position").equals(b.select("dataset", "doc_id", "epoch", "position"))
    c = build_mixture(pools, 12_000, weights, {}, seed=8).samples
    assert not a["doc_id"].equals(c["doc_id"])  # the seed changes the order
    assert a["position"].to_list() == list(range(a.height))


def test_shortfall_is_reported_not_hidden(pools):
    mix = build_mixture({"d3": pools["d3"]}, 50_000, {"d3": 1.0}, {}, max_repeats=2)
    [plan] = mix.plan
    assert plan.passes == pytest.approx(2.0) and plan.shortfall > 0
    assert "capped at 2 passes" in mix.warnings[0]


def test_a_weighted_dataset_without_rows_is_an_error(pools):
    with pytest.raises(ValueError, match=r"\['d2'\] but they hold no rows"):
        build_mixture({"d1": pools["d1"]}, 1000, {"d1": 1.0, "d2": 1.0}, {})
    stage1 = build_mixture({"d1": pools["d1"]}, 1000, {"d1": 1.0, "d2": 0.0}, {})  # weight 0: not needed
    assert set(stage1.samples["dataset"]) == {"d1"}


def test_manifest_accounts_for_every_token(pools):
    mix = build_mixture(pools, 8_000, {"d1": 1.0, "d2": 1.0, "d3": 1.0}, {})
    manifest = mix.manifest()
    assert manifest["tokens"].sum() == mix.samples["tokens"].sum()
    assert manifest["samples"].sum() == mix.samples.height
    assert set(manifest.filter(pl.col("dataset") == "d2")["topic"]) == {"topic-000"}


def test_a_pool_with_cached_token_counts_needs_no_text_and_mixes_the_same(pools):
    weights = {"d1": 46.5, "d2": 13.63, "d3": 39.87}
    counts = token_counts(pools["d1"]["text"].to_list())
    cached = pools["d1"].drop("text").with_columns(pl.Series("tokens", [c + 2 for c in counts], dtype=pl.Int64))
    from_text = build_mixture(pools, 20_000, weights, {"web": 1.0, "book": 1.0})
    from_counts = build_mixture({**pools, "d1": cached}, 20_000, weights, {"web": 1.0, "book": 1.0})
    assert from_counts.samples.drop("text").equals(from_text.samples.drop("text"))
    assert from_counts.samples.filter(pl.col("dataset") == "d1")["text"].is_null().all()
    with pytest.raises(ValueError, match=r"lack columns \['text'\]"):
        build_mixture({"d1": pools["d1"].drop("text")}, 1_000, {"d1": 1.0}, {})

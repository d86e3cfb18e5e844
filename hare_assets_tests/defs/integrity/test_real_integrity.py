"""Decontamination of the real corpora against the six real leaderboard benchmarks, through the graph and `hare scan`."""

import json
import random

import dagster as dg
import numpy as np
import polars as pl
import pytest

from hare_assets.cli import main
from hare_assets.lib.benchmarks import items_from_frame
from hare_assets_tests.lib.test_decontam import _edit, _render, _words

LEADERBOARD = {"arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k"}


@pytest.fixture(scope="module")
def decontaminated(corpora):
    """benchmark_sets for all six (from $HARE_REAL_DATA/benchmarks), the index, and D1 decontaminated."""
    profile, store, _, defs, instance = corpora
    assets, resources = list(defs.assets), dict(defs.resources)
    sets = {b: dg.materialize(assets, selection=["benchmark_sets"], partition_key=b, resources=resources, instance=instance)
            for b in profile.integrity.benchmarks}
    assert dg.materialize(assets, selection=["benchmark_ngram_index"], resources=resources, instance=instance).success
    d1 = [dg.materialize(assets, selection=["decontaminated_documents"], partition_key=block, resources=resources, instance=instance)
          for block in sorted(instance.get_dynamic_partitions("blocks"))]
    return store, sets, d1


def test_every_split_of_every_benchmark_is_indexed(decontaminated):
    store, sets, d1 = decontaminated
    assert all(r.success for r in sets.values()) and all(r.success for r in d1)
    counts = {b: store.num_rows("benchmark_sets", b) for b in sets}
    assert counts == {"arc_challenge": 1172, "hellaswag": 10042, "mmlu": 14327, "truthfulqa_mc2": 817, "winogrande": 1267, "gsm8k": 8792}
    splits = dict(zip(*store.read("benchmark_sets", "gsm8k").group_by("split").len().sort("split").to_dict().values()))
    assert splits == {"test": 1319, "train": 7473}
    items = store.read("benchmark_ngram_index__items")
    assert set(items["benchmark"]) == LEADERBOARD and items.height == sum(counts.values())
    assert set(store.partitions("benchmark_ngram_index")) == {"n8", "n13"}


def test_real_corpora_are_not_flagged_and_every_row_is_accounted(decontaminated, capsys):
    store, _, d1 = decontaminated
    checks = [c for result in d1 for c in result.get_asset_check_evaluations()]
    assert len(checks) == 2 * len(d1) and all(c.passed for c in checks), [c.description for c in checks]
    removed = store.read("decontaminated_documents__removed")
    hits = store.read("decontaminated_documents__hits")
    with capsys.disabled():
        print(f"\nreal corpora vs six benchmarks: {store.num_rows('deduplicated_documents')} documents, "
              f"{hits['doc_id'].n_unique()} with a 13-gram hit, {removed.height} removed (false positives)")
    assert removed.height == 0  # no real document is mostly benchmark text or quotes a whole item
    # the one true overlap: MMLU quotes the opening of A Tale of Two Cities; recorded, and the book is kept
    tale = hits.filter(pl.col("shard") == "pg_98-0.txt")
    assert tale.height and (tale["benchmark"] == "mmlu").all() and (tale["action"] == "kept").all()


def test_planted_items_are_removed_through_the_graph(decontaminated, tmp_path):
    """Real items planted verbatim, with case/punctuation edits and with a few words changed, as half of a real
    document (removed) or quoted inside a long one (cut out): >= 99% of items of >= 26 words are caught."""
    from hare_assets.defs.integrity.assets import load_index
    from hare_assets.lib.contamination import decontaminate, rule_for
    from hare_assets.lib.profile import load_profile

    store, _, _ = decontaminated
    rng = random.Random(7)
    items = [it for b in sorted(LEADERBOARD) for it in rng.sample(items_from_frame(store.read("benchmark_sets", b)), 12)]
    hosts = [t for t in store.read("deduplicated_documents")["text"].to_list() if 300 <= len(t.split()) <= 3000]
    rows = []
    for item in items:
        for kind in ("verbatim", "case_punct", "words"):
            planted = _render(item, rng) if kind == "verbatim" else _edit(_render(item, rng), kind, rng)
            host = rng.choice(hosts).split()
            for layout in ("half", "quoted"):
                filler = host[: len(planted.split())] if layout == "half" else host
                cut = rng.randrange(len(filler) + 1)
                rows.append({"item": item.item_id, "kind": kind, "layout": layout, "words": len(_words(planted)),
                             "text": " ".join([*filler[:cut], planted, *filler[cut:]])})
    frame = pl.DataFrame(rows).with_row_index("row").with_columns(
        pl.format("p{}", "row").alias("doc_id"), pl.lit("planted").alias("source"), pl.lit("planted.jsonl").alias("shard"),
        pl.col("row").cast(pl.Int64), pl.Series("edits", [[] for _ in rows], dtype=pl.List(pl.String)))
    rule = rule_for(load_profile("local-corpora").integrity, "d1")
    out = decontaminate(frame, load_index(store, rule.n), rule, "d1")
    acted = out.hits.filter(pl.col("action") != "kept").group_by("doc_id").agg(pl.col("action").first())
    caught = dict(zip(acted["doc_id"], acted["action"]))
    long_enough = frame.filter(pl.col("words") >= 2 * rule.n)
    recall = np.mean([d in caught for d in long_enough["doc_id"]])
    by_layout = {layout: sum(caught.get(d) == "removed" for d in long_enough.filter(pl.col("layout") == layout)["doc_id"])
                 for layout in ("half", "quoted")}
    print(f"\nplanted real items caught: {len(caught)}/{frame.height}; items of >= {2 * rule.n} words: {recall:.4f}; "
          f"removed whole: {by_layout}, the rest cut out")
    assert recall >= 0.99
    assert set(out.removed["doc_id"]) | set(out.kept.filter(pl.col("edits").list.contains("benchmark_excised"))["doc_id"]) == set(caught)


def test_hare_scan_on_a_directory_of_real_files(real_data, tmp_path, capsys):
    folder = tmp_path / "scan"
    folder.mkdir()
    web = (real_data / "corpora/web/dclm_majority_data.jsonl").read_text().splitlines()[:150]
    (folder / "web.jsonl").write_text("\n".join(web) + "\n")
    q = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
         "How many clips did Natalia sell altogether in April and May?")
    leak = {"text": f"Homework help! {q} Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May. #### 72"}
    (folder / "forum.jsonl").write_text(json.dumps(leak) + "\n")
    code = main(["scan", str(folder), "--benchmarks", str(real_data / "benchmarks"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["documents_scanned"] == 151 and report["documents_flagged"] == 1
    [hit] = [h for h in report["hits"] if h["flagged"]]
    assert hit["file"].endswith("forum.jsonl") and hit["row"] == 0 and hit["benchmark"] == "gsm8k" and hit["item_id"].startswith("gsm8k/train/")
    assert main(["scan", str(folder / "web.jsonl"), "--benchmarks", str(real_data / "benchmarks")]) == 0
    assert "0 flagged" in capsys.readouterr().out

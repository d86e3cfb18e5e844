import polars as pl

from hare_assets.lib import schemas
from hare_assets.lib.benchmarks import BenchmarkItem
from hare_assets.lib.contamination import EXCISED, REASON, contamination_matrix, decontaminate, root_documents, rule_for
from hare_assets.lib.decontam import DecontamRule, NgramIndex
from hare_assets.lib.profile import IntegrityConfig
from hare_assets_tests.lib.test_decontam import _filler

QUESTION = "Which planet in our solar system is the hottest even though it is not the closest one to the Sun"
ITEM = BenchmarkItem("toy", "test", "q1", QUESTION, ("Jupiter", "Mercury", "Venus", "Mars"), 2, "",
                     tuple(f"{QUESTION}? {c}" for c in ("Jupiter", "Mercury", "Venus", "Mars")))
INDEX = NgramIndex.build([ITEM], 13)


def frame(texts: list[str], **extra) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame({"doc_id": [f"d{i}" for i in range(n)], "source": ["web"] * n, "shard": ["s.jsonl"] * n,
                         "row": list(range(n)), "text": texts, **extra})


def test_rules_come_from_the_profile_and_strict_overrides_them():
    cfg = IntegrityConfig()
    assert rule_for(cfg, "d1") == DecontamRule(n=13, rate="coverage", threshold=0.5, min_item_share=0.8)
    assert rule_for(cfg, "d3").n == 8
    strict = IntegrityConfig(strict=True)
    assert {rule_for(strict, d).rate for d in ("d1", "d2", "d3")} == {"strict"}


def test_mostly_benchmark_removed_quoted_item_excised_fragment_kept():
    quoted = f"{_filler(300, 1)}. {QUESTION}? Venus. {_filler(300, 2)}"
    texts = [
        f"{QUESTION}? Venus. {_filler(8)}",  # mostly the item: HARE's rate removes it
        quoted,  # a quoted item in a long page: the quote is cut out, the page kept
        f"{_filler(200, 3)} {' '.join(QUESTION.split()[:14])} {_filler(200, 4)}",  # 14 words of it: a hit, kept as is
        _filler(120, 5),
    ]
    docs = frame(texts, edits=[["links"], [], [], []])
    out = decontaminate(docs, INDEX, DecontamRule(n=13, min_item_share=0.8), "d1")
    assert out.removed["doc_id"].to_list() == ["d0"] and set(out.removed["reason"]) == {REASON}
    assert "holds 100% of toy test q1" in out.removed["detail"][0]
    assert out.kept["doc_id"].to_list() == ["d1", "d2", "d3"]
    page = out.kept.row(0, named=True)
    assert "hottest" not in page["text"] and page["edits"] == [EXCISED]
    assert page["text"].startswith(_filler(300, 1)) and page["text"].endswith(_filler(300, 2))  # only the quoted sentences went
    assert out.kept["text"][1:].to_list() == texts[2:]
    hits = out.hits.sort("doc_id")
    assert hits["doc_id"].to_list() == ["d0", "d1", "d2"] and hits["action"].to_list() == ["removed", "excised", "kept"]
    assert hits["item_share"][1] == 1.0 and hits["item_share"][2] < 0.8
    # without the item-share rule, HARE's sample rate alone leaves the quote in the page
    plain = decontaminate(docs, INDEX, DecontamRule(n=13), "d1")
    assert plain.removed["doc_id"].to_list() == ["d0"] and plain.kept["text"][0] == quoted


def test_a_short_page_that_is_mostly_the_quote_is_removed_not_excised():
    text = f"{_filler(16, 6)}. {QUESTION}? Venus. {_filler(8, 7)}"  # under half the item: HARE keeps it; too little after a cut
    out = decontaminate(frame([text]), INDEX, DecontamRule(n=13, min_item_share=0.8), "d1")
    assert out.kept.height == 0 and out.hits["action"].to_list() == ["removed"]


def test_hits_keep_synthetic_lineage_and_roots_reach_the_source_shards():
    d1 = frame(["seed text one", "seed text two"])
    d2 = pl.DataFrame({"doc_id": ["s0"], "source": ["synthetic"], "shard": ["topic=t1"], "row": [0],
                       "text": [f"{QUESTION}? Venus."], "topic": ["t1"], "seed_doc_ids": [["d1"]]})
    d3 = pl.DataFrame({"doc_id": ["q0", "o0"], "source": ["task:qa", "task:sst2"], "shard": ["task=qa", "sst2/dev.tsv"],
                       "row": [0, 0], "text": ["x", "y"], "topic": ["t1", None], "seed_doc_ids": [["s0"], ["raw-record"]]})
    out = decontaminate(d2, INDEX, DecontamRule(n=13), "d2")
    assert out.hits.row(0, named=True) | {"seed_doc_ids": None} == {
        "dataset": "d2", "doc_id": "s0", "source": "synthetic", "shard": "topic=t1", "row": 0, "topic": "t1",
        "seed_doc_ids": None, "benchmark": "toy", "split": "test", "item_id": "q1", "matched_ngrams": out.hits["matched_ngrams"][0],
        "item_share": 1.0, "rate": 1.0, "action": "removed"}
    roots = root_documents(["q0", "s0", "d0", "o0"], [d1, d2, d3]).sort("doc_id")
    assert roots.select("doc_id", "root_doc_id", "root_source", "root_shard").rows() == [
        ("d0", "d0", "web", "s.jsonl"), ("o0", "o0", "task:sst2", "sst2/dev.tsv"),  # an open task row is its own root
        ("q0", "d1", "web", "s.jsonl"), ("s0", "d1", "web", "s.jsonl")]


def test_matrix_counts_documents_per_benchmark_dataset_source_topic():
    hits = pl.DataFrame({
        "benchmark": ["b", "b", "b", "c"], "dataset": ["d1", "d1", "d1", "d2"], "source": ["web", "web", "web", "synthetic"],
        "topic": [None, None, None, "t1"], "doc_id": ["x", "x", "y", "z"], "item_id": ["1", "2", "1", "9"],
        "action": ["removed", "removed", "excised", "kept"]})
    m = contamination_matrix(hits)
    assert m.rows() == [("b", "d1", "web", None, 2, 1, 1, 2), ("c", "d2", "synthetic", "t1", 1, 0, 0, 1)]


def test_an_empty_partition_decontaminates_to_empty_tables():
    """A topic whose every generated document was removed upstream still gets its (empty) D2 partition."""
    empty = schemas.frame([], schemas.SYNTHETIC)
    out = decontaminate(empty, INDEX, DecontamRule(n=13, min_item_share=0.8), "d2")
    assert (out.kept.height, out.removed.height, out.hits.height) == (0, 0, 0)
    assert out.kept.schema == empty.schema and out.removed.columns == [*empty.columns, "reason", "detail"]

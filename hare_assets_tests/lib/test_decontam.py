import json
import random
from collections import defaultdict

import numpy as np
import polars as pl
import pytest

from hare_assets.lib.benchmarks import BenchmarkItem, load_items, load_registry
from hare_assets.lib.decontam import (
    D1_RULE,
    D3_RULE,
    DecontamRule,
    NgramIndex,
    _ngram_keys_at,
    _tokenize,
    is_contaminated,
    iter_scan,
    normalise_words_text,
    scan,
    scan_batch,
)
from hare_assets.lib.dedup import normalise_for_matching
from hare_assets.lib.paths import DEMO_DIR
from hare_assets.lib.profile import load_profile
from hare_assets.lib.readers import list_shards, read_shard
from hare_assets.lib.text_rules import ngram_hashes

QUESTION = "Which planet in our solar system is the hottest even though it is not the closest one to the Sun"
CHOICES = ("Jupiter", "Mercury", "Venus", "Mars")
FILLER = ("the river ran past old mills and quiet farms while travellers rested under tall elms and talked "
          "about weather prices harvests and distant cities they hoped to see before winter came again").split()


def _item(item_id="q1", question=QUESTION, choices=CHOICES, answer=2, benchmark="toy", views=None) -> BenchmarkItem:
    views = views or tuple(f"{question}? {c}" for c in choices) + (" ".join([question + "?", *choices]),)
    return BenchmarkItem(benchmark, "test", item_id, question, choices, answer, "", views)


def _filler(count: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(FILLER) for _ in range(count))


def _words(text: str) -> list[str]:
    return normalise_for_matching(text).split()


# --- words and hashing -------------------------------------------------------------------------------


def test_fast_words_are_normalise_for_matching_words():
    texts = ["Janet’s ducks lay 16 eggs — per day!", "ﬁnal CAFÉ déjà-vu (x²) snake_case İstanbul", "",
             "tabs\tand\nnewlines  ", "Ünïcödé ｆｕｌｌｗｉｄｔｈ ① e\u0301cole", "🙂 emoji 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 words"]
    words = _tokenize([normalise_words_text(t) for t in texts])
    for i, text in enumerate(texts):
        assert words.words(int(words.first_word[i]), int(words.first_word[i + 1])) == _words(text), text


def test_keys_at_positions_are_the_projects_ngram_hashes():
    words = _tokenize([normalise_words_text(_filler(200))])
    at = np.array([0, 5, 17, 150], dtype=np.int64)
    assert np.array_equal(_ngram_keys_at(words.hashes, at, 8), ngram_hashes(words.hashes, 8)[at])


# --- rates -----------------------------------------------------------------------------------------


def test_rate_definitions_on_an_item_making_up_half_a_document():
    index = NgramIndex.build([_item()], 13)
    planted = f"{QUESTION}? Venus"  # 21 words
    doc = f"{_filler(21)} {planted}"
    result = scan(doc, index)
    words, share_words = len(_words(doc)), len(_words(planted))
    assert (words, share_words) == (42, 21)
    assert result.coverage == pytest.approx(0.5)
    assert result.positions == pytest.approx((21 - 13 + 1) / (42 - 13 + 1))  # (sL - n + 1) / (L - n + 1)
    assert result.strict == 1.0
    assert is_contaminated(result, DecontamRule(13, "coverage")) and not is_contaminated(result, DecontamRule(13, "positions"))
    assert [(h.item_id, h.matched_ngrams) for h in result.hits] == [("q1", 9)]
    assert result.spans == ((doc.index("Which"), len(doc)),)


def test_coverage_survives_substituted_inserted_and_dropped_words():
    index = NgramIndex.build([_item()], 8)
    for edited in (QUESTION.replace("hottest", "warmest"), QUESTION.replace("even though", "even so though"),
                   QUESTION.replace("not the", "not"), QUESTION.replace("Which", "Name")):
        doc = f"{_filler(len(_words(edited)) + 1, 3)} {edited}? Venus"
        result = scan(doc, index)
        assert result.coverage >= 0.5, (edited, result.coverage, result.covered)
        assert result.positions < 0.5


def test_no_hits_below_n_words_or_on_unrelated_text():
    index = NgramIndex.build([_item()], 13)
    assert scan("Which planet is the hottest", index).strict == 0.0
    assert scan(_filler(500, 9), index).hits == ()
    with pytest.raises(ValueError):
        DecontamRule(n=1)


def test_hash_coincidences_are_never_reported():
    """Inject the key of an n-gram the item does not hold; the scan must verify words and drop it."""
    index = NgramIndex.build([_item()], 8)
    doc = _filler(40, 5)
    words = _tokenize([normalise_words_text(doc)])
    fake = ngram_hashes(words.hashes, 8)[10]
    keys = np.append(index.keys, fake)
    order = np.argsort(keys, kind="stable")
    counts = np.append(np.diff(index.offsets), 1)[order]
    owners = np.append(index.items, np.uint32(0))
    starts = np.append(index.offsets[:-1], len(index.items))[order]
    items = np.concatenate([owners[s : s + c] for s, c in zip(starts, counts)]).astype(np.uint32)
    forged = NgramIndex(8, keys[order], np.append(0, np.cumsum(counts)), items, index.catalog, index.views)
    bigrams = np.concatenate([NgramIndex._hash_views(index.views, None)[2], ngram_hashes(words.hashes, 2)])
    forged._filter = type(index.filter)(bigrams)  # let the forged window through the prefilter
    assert scan(doc, forged).hits == () and scan_batch([doc], forged).hits == {}
    assert scan(f"{doc} {QUESTION}? Venus", forged).hits[0].item_id == "q1"


def test_spans_point_into_the_original_text_even_when_normalisation_changes_it():
    index = NgramIndex.build([_item()], 8)
    doc = f"ﬁﬁ İİ ﬀ — {QUESTION.upper()}? VENUS. ﬁn"
    result = scan(doc, index)
    [(a, b)] = result.spans
    assert doc[a:b].startswith("WHICH PLANET") and doc[a:b].rstrip(".").endswith("VENUS")


def test_batch_matches_single_documents_and_streams():
    items = [_item("q1"), _item("q2", question="What is the name of the longest river that flows through the city of Paris in France",
                                 choices=("Seine", "Loire", "Rhone", "Thames"), answer=0)]
    index = NgramIndex.build(items, 8)
    docs = [_filler(30, i) for i in range(50)]
    docs[7] = f"{items[1].question} Seine"
    docs[31] = f"{_filler(10)} {QUESTION}? Venus {_filler(5, 2)}"
    batch = scan_batch(docs, index, D3_RULE)
    assert set(batch.hits) == {7, 31} and list(np.flatnonzero(batch.contaminated)) == [7, 31]
    for i in (7, 31):
        single = scan(docs[i], index)
        assert batch[i] == (pytest.approx(single.coverage), single.hits)
        assert batch.rate(i, "positions") == pytest.approx(single.positions)
    assert list(iter_scan(iter(docs), index, D3_RULE, batch=8)) == list(batch)
    with pytest.raises(ValueError):
        scan_batch(docs, index, D1_RULE)  # the index was built at n=8


def test_parquet_round_trip_and_several_sizes_in_one_table(tmp_path):
    items = [_item("q1"), _item("q2", question="Roughly how long does light from the surface of the Sun take to reach the Earth",
                                 choices=("About eight minutes", "About eight seconds"), answer=0)]
    doc = f"{_filler(20)} {items[1].question}? About eight minutes {_filler(4, 1)}"
    index = NgramIndex.build(items, 10)
    loaded = NgramIndex.load(index.save(tmp_path / "idx"))
    assert np.array_equal(loaded.keys, index.keys) and loaded.catalog == index.catalog
    assert scan(doc, loaded) == scan(doc, index)
    postings13, items13 = NgramIndex.build(items, 13).to_tables()
    postings10, _ = index.to_tables()
    both = pl.concat([pl.from_arrow(postings10), pl.from_arrow(postings13)])
    again = NgramIndex.from_tables(both, pl.from_arrow(items13), n=10)
    assert scan(doc, again) == scan(doc, index)
    with pytest.raises(ValueError, match="pick one"):
        NgramIndex.from_tables(both, items13)


def test_demo_corpus_leakage_is_found():
    """The demo corpus plants 9 demo_mc items (6 verbatim, 3 edited) into longer documents."""
    profile = load_profile("demo")
    docs = [d for src in profile.sources for shard in list_shards(src) for d in read_shard(src, shard, profile.ingest.max_doc_bytes).docs]
    index = NgramIndex.build(load_items(load_registry()["demo_mc"]), 8)
    batch = scan_batch([d["text"] for d in docs], index, DecontamRule(8, "strict"))
    found = {(docs[i]["source"], docs[i]["shard"], docs[i]["row"]): {h.item_id for h in hits} for i, hits in batch.hits.items()}
    planted = json.loads((DEMO_DIR / "planted.json").read_text())["leakage"]
    assert len(planted) == 9
    for leak in planted:
        assert leak["item_id"] in found.get((leak["source"], leak["file"], leak["row"]), set()), leak


# --- real benchmarks planted into real corpora ----------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SUBSTITUTES = "apparently certain various notably perhaps indeed quite somewhat really fairly".split()
EDITS = ("verbatim", "case_punct", "words")


@pytest.fixture(scope="module")
def real(real_data):
    specs = load_registry()
    items = [i for name in specs if name != "demo_mc" for i in load_items(specs[name], real_data / "benchmarks")]
    profile = load_profile("local-corpora")
    corpus = [d["text"] for src in profile.sources for shard in list_shards(src)
              for d in read_shard(src, shard, profile.ingest.max_doc_bytes).docs]
    return {"items": items, "corpus": corpus, 13: NgramIndex.build(items, 13), 8: NgramIndex.build(items, 8)}


def _render(item: BenchmarkItem, rng: random.Random) -> str:
    """How a leaked item tends to look: the prompt shape or question + answer, context + gold ending, ..."""
    if item.benchmark == "hellaswag":
        return f"{item.context} {item.choices[item.answer]}"
    if item.benchmark == "winogrande":
        return item.question.replace("_", item.choices[item.answer])
    if item.benchmark == "gsm8k":
        return f"{item.question}\n{item.answer}"
    if rng.random() < 0.5:
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item.choices))
        return f"{item.question}\n{options}\nAnswer: {LETTERS[item.answer]}"
    return f"{item.question} {item.choices[item.answer]}"


def _edit(text: str, kind: str, rng: random.Random) -> str:
    words = text.split()
    if kind == "case_punct":  # case, punctuation stripped, curly apostrophes
        words = [(w.upper() if r < 0.15 else w.capitalize() if r < 0.3 else w) for w, r in ((w, rng.random()) for w in words)]
        words = [(w.strip('.,;:?!"') if rng.random() < 0.5 else w).replace("'", "’") for w in words]
    elif kind == "words":  # a few words changed: 1, 2 or 3 by length
        for p in rng.sample(range(len(words)), 1 if len(words) < 40 else 2 if len(words) < 80 else 3):
            words[p] = rng.choice(SUBSTITUTES)
    elif kind == "partial":  # only the first 60% of the item
        words = words[: max(1, int(len(words) * 0.6))]
    return " ".join(words)


def _plant(real, per_benchmark=20, seed=20240611):
    """(benchmark, item, edit, item words, document): each item at item shares 0.5, 0.7 and 1.0 of the words."""
    rng = random.Random(seed)
    hosts = [t for t in real["corpus"] if len(t.split()) >= 60]
    by_benchmark = defaultdict(list)
    for item in real["items"]:
        by_benchmark[item.benchmark].append(item)
    docs = []
    for name, items in sorted(by_benchmark.items()):
        for item in rng.sample(items, per_benchmark):
            for kind in (*EDITS, "partial"):
                for share in (0.5, 0.7, 1.0):
                    planted = _edit(_render(item, rng), kind, rng)
                    size = len(_words(planted))
                    host = rng.choice(hosts).split()
                    start = rng.randrange(max(1, len(host) - 2 * size))
                    host = host[start : start + int(size * (1 - share) / share) + 2]
                    while host and size / (size + len(_words(" ".join(host)))) < share:
                        host.pop()
                    cut = rng.randrange(len(host) + 1)
                    doc = " ".join([*host[:cut], planted, *host[cut:]])
                    docs.append((name, item, kind, size, doc))
    return docs


def test_recall_of_planted_real_items(real):
    """Coverage rule, share >= 0.5: n=13 must catch items of >= 26 words, n=8 items of >= 16 words, at >= 99%."""
    docs = _plant(real)
    texts = [d[-1] for d in docs]
    report = {}
    for n, rule in ((13, D1_RULE), (8, D3_RULE)):
        batch = scan_batch(texts, real[n], rule)
        own = [any(h.item_id == d[1].item_id for h in batch.hits.get(i, ())) for i, d in enumerate(docs)]
        table = defaultdict(lambda: [0, 0, 0, 0])
        for i, (name, _item, kind, size, _doc) in enumerate(docs):
            row = table[(name, kind)]
            row[0] += 1
            row[1] += bool(batch.contaminated[i] and own[i])
            row[2] += bool(batch.rate(i, "positions") >= 0.5 and own[i])
            row[3] += own[i]
        print(f"\nn={n}: planted documents caught (coverage rule / positions >= 0.5 / any hit of the item)")
        for (name, kind), (total, cov, pos, strict) in sorted(table.items()):
            print(f"  {name:15} {kind:10} {total:3}  coverage {cov:3}  positions {pos:3}  strict {strict:3}")
        edited = [i for i, d in enumerate(docs) if d[2] in EDITS]
        long_enough = [i for i in edited if docs[i][3] >= 2 * n]
        recall_all = np.mean([batch.contaminated[i] and own[i] for i in edited])
        recall = np.mean([batch.contaminated[i] and own[i] for i in long_enough])
        partial = [i for i, d in enumerate(docs) if d[2] == "partial"]
        report[n] = (recall, recall_all, len(long_enough), len(edited), np.mean([own[i] for i in partial]))
        print(f"  recall, items >= {2 * n} words: {recall:.4f} of {len(long_enough)}; all items: {recall_all:.4f} of {len(edited)};"
              f" partly embedded, any hit: {report[n][4]:.4f}")
    assert report[13][0] >= 0.99 and report[8][0] >= 0.99
    assert report[8][1] >= 0.97  # short items with a changed word can fall under n words of intact text
    assert report[8][4] >= 0.9


def test_false_positives_on_unmodified_real_corpora(real):
    corpus = real["corpus"]
    assert len(corpus) >= 1000
    for n, rule in ((13, D1_RULE), (8, D3_RULE)):
        batch = scan_batch(corpus, real[n], rule)
        flagged = np.flatnonzero(batch.contaminated)
        print(f"\nn={n}: {len(corpus)} documents, {len(batch.hits)} with any benchmark {n}-gram, {len(flagged)} flagged (coverage >= 0.5)")
        for i in sorted(batch.hits, key=lambda i: -batch.rates[i]):
            result = scan(corpus[i], real[n])
            top = result.hits[0]
            print(f"  doc {i:5} words {result.words:7} coverage {result.coverage:.3f} {top.benchmark}:{top.item_id} "
                  f"x{top.matched_ngrams} | {result.ngrams[0]!r}")
        assert len(flagged) <= len(corpus) // 1000
    strict13 = scan_batch(corpus, real[13], DecontamRule(13, "strict"))
    # The one 13-gram overlap is a true one: MMLU quotes the opening of A Tale of Two Cities.
    assert len(strict13.hits) <= 3
    assert any(h.item_id.startswith("mmlu/test/high_school_world_history/") for hits in strict13.hits.values() for h in hits)

import random

import numpy as np

from hare_assets.lib.dedup import (
    EXACT,
    NEAR,
    MinHashParams,
    _permutation_seeds,
    find_duplicates,
    first_ingested_wins,
    jaccard,
    shingles,
    signature,
)
from hare_assets.lib.profile import DedupConfig

WORDS = "river stone garden market winter silver engine harbour forest letter window candle music orbit".split()


def _doc(seed: int, n: int = 120) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randint(0, 50)) for _ in range(n)) + "."


def _edit(text: str, changes: int, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for _ in range(changes):
        words[rng.randrange(len(words))] = "changed"
    return " ".join(words)


def test_exact_and_near_duplicates_keep_the_earliest():
    base = [_doc(i) for i in range(30)]
    texts = base + [base[3].upper(), _edit(base[7], 2, 1), _doc(99)]  # case-only copy, a light edit, a new doc
    dups = find_duplicates(texts, MinHashParams())
    got = {(d.removed, d.kept, d.reason) for d in dups}
    assert got == {(30, 3, EXACT), (31, 7, NEAR)}
    near = next(d for d in dups if d.reason == NEAR)
    assert 0.8 <= near.similarity < 1.0


def test_deterministic_and_order_decides_the_kept_document():
    texts = [_doc(1), _edit(_doc(1), 1, 5), _doc(2)]
    assert find_duplicates(texts, MinHashParams()) == find_duplicates(list(texts), MinHashParams())
    swapped = [texts[1], texts[0], texts[2]]
    [d] = find_duplicates(swapped, MinHashParams())
    assert (d.removed, d.kept) == (1, 0)


def test_verification_rejects_band_collisions_below_threshold():
    a = _doc(5, 200)
    b = _edit(a, 25, 3)  # roughly half of the 5-grams change
    sim = jaccard(shingles(a, 5), shingles(b, 5))
    assert sim < 0.8
    loose = MinHashParams(bands=40, rows=2, num_perm=80, verify=False)  # catches almost any overlap
    assert len(find_duplicates([a, b], loose)) == 1
    assert find_duplicates([a, b], MinHashParams(bands=40, rows=2, num_perm=80, verify=True)) == []


def test_signature_agreement_estimates_jaccard():
    a, b = _doc(11, 400), _edit(_doc(11, 400), 20, 9)
    seeds = _permutation_seeds(MinHashParams(num_perm=256))
    sa, sb = signature(shingles(a, 5), seeds), signature(shingles(b, 5), seeds)
    assert abs(float(np.mean(sa == sb)) - jaccard(shingles(a, 5), shingles(b, 5))) < 0.1


def test_threshold_only_profile_uses_optimal_param():
    params = MinHashParams.from_profile(DedupConfig(bands=None, rows=None, threshold=0.8, num_perm=112))
    assert params.bands * params.rows <= 112 and (params.bands, params.rows) != (14, 8)


def test_a_chain_keeps_the_end_that_duplicates_no_kept_document():
    """First ingested wins: B goes as a copy of A; C resembles only B (gone), so C stays, and the
    decisions about A and B are those made before C arrived."""
    pairs = [(0, 1, 0.8), (1, 2, 0.8)]
    assert [(d.removed, d.kept) for d in first_ingested_wins(pairs)] == [(1, 0)]
    assert first_ingested_wins(pairs[:1]) == first_ingested_wins(pairs)[:1]
    assert [(d.removed, d.kept) for d in first_ingested_wins([*pairs, (0, 2, 0.75)])] == [(1, 0), (2, 0)]

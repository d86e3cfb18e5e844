"""Exact and MinHash-LSH near-duplicate detection across sources.

Documents arrive in a stable order: the order they were first ingested (block
sequence, then shard, then row; for one ingestion of a corpus that is profile
source order). Exact duplicates share a normalised-text hash; near-duplicate
candidates share a MinHash band bucket, each document paired with the earliest
document of every bucket it falls in, and with `verify` a pair counts only when
the exact Jaccard similarity of their shingle sets reaches the threshold.

Keep rule, *first ingested wins*: in stable order, a document is removed when it
is a duplicate of an earlier document that is kept. A decision depends only on
earlier documents, so documents ingested later never remove one that an earlier
run kept, and adding a block gives the same decisions as deduplicating
everything from scratch. (Unlike a transitive cluster, a chain A~B~C with A and
C dissimilar keeps C: it duplicates no kept document.) Band/row choice defaults
to text-dedup's `optimal_param` when a profile gives only a threshold.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

from hare_assets.lib.text_rules import _mix, ngram_hashes

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")
_MAX_HASH_CHUNK = 8192  # shingles per block when computing signatures; bounds memory on whole books

EXACT = "exact_duplicate"
NEAR = "near_duplicate"


@dataclass(frozen=True)
class MinHashParams:
    ngram: int = 5
    num_perm: int = 100
    bands: int = 20
    rows: int = 5
    threshold: float = 0.7
    verify: bool = True
    seed: int = 42

    @classmethod
    def from_profile(cls, cfg) -> MinHashParams:
        bands, rows = cfg.bands, cfg.rows
        if bands is None:
            from text_dedup.utils import optimal_param  # heavy import, only when asked for

            bands, rows = optimal_param(cfg.threshold, cfg.num_perm)
        return cls(cfg.ngram, cfg.num_perm, bands, rows, cfg.threshold, cfg.verify, cfg.seed)


@dataclass(frozen=True)
class Duplicate:
    removed: int  # index into the input sequence
    kept: int
    reason: str
    similarity: float


def normalise_for_matching(text: str) -> str:
    """Lower-case, NFKC, punctuation dropped, whitespace collapsed: what both exact and near matching see."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def shingles(text: str, n: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word n-grams of normalised text (short texts: one shingle)."""
    words = normalise_for_matching(text).split()
    if not words:
        return np.empty(0, dtype=np.uint64)
    ids = np.fromiter((xxhash.xxh3_64_intdigest(w.encode("utf-8", "surrogatepass")) for w in words), dtype=np.uint64, count=len(words))
    hashes = ngram_hashes(ids, min(n, len(words)))
    return np.unique(hashes)


def _permutation_seeds(params: MinHashParams) -> np.ndarray:
    rng = np.random.default_rng(params.seed)
    return rng.integers(1, np.iinfo(np.int64).max, size=params.num_perm, dtype=np.int64).astype(np.uint64)


def signature(shingle_set: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """MinHash signature: per seed, the minimum of a seeded 64-bit mix over the shingles."""
    sig = np.full(len(seeds), np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(shingle_set), _MAX_HASH_CHUNK):
            block = shingle_set[start : start + _MAX_HASH_CHUNK]
            np.minimum(sig, _mix(block[:, None] ^ seeds[None, :]).min(axis=0), out=sig)
    return sig


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def exact_duplicates(texts: Sequence[str]) -> tuple[list[Duplicate], list[int]]:
    """Duplicates of normalised text, and the indices that survive (first occurrences)."""
    duplicates, survivors = [], []
    first_seen: dict[bytes, int] = {}
    for i, text in enumerate(texts):
        key = xxhash.xxh3_128_digest(normalise_for_matching(text).encode("utf-8", "surrogatepass"))
        if key in first_seen:
            duplicates.append(Duplicate(i, first_seen[key], EXACT, 1.0))
        else:
            first_seen[key] = i
            survivors.append(i)
    return duplicates, survivors


def near_duplicates(
    texts: Sequence[str],
    candidates: Sequence[int],
    params: MinHashParams,
    progress: Callable[[int, int], None] | None = None,
) -> list[Duplicate]:
    """MinHash-LSH over `candidates` (in stable order), decided by `first_ingested_wins`."""
    seeds = _permutation_seeds(params)
    sets: dict[int, np.ndarray] = {}
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for done, i in enumerate(candidates):
        sets[i] = shingles(texts[i], params.ngram)
        if len(sets[i]) == 0:
            continue
        sig = signature(sets[i], seeds)
        for band in range(params.bands):
            key = sig[band * params.rows : (band + 1) * params.rows].tobytes()
            buckets[(band, key)].append(i)
        if progress and (done + 1) % 2000 == 0:
            progress(done + 1, len(candidates))

    checked = sorted({(members[0], other) for members in buckets.values() for other in members[1:]})
    pairs = []
    for head, other in checked:
        similarity = jaccard(sets[head], sets[other])
        if not params.verify or similarity >= params.threshold:
            pairs.append((head, other, similarity))
    return first_ingested_wins(pairs)


def first_ingested_wins(pairs: Iterable[tuple[int, int, float]]) -> list[Duplicate]:
    """Near-duplicate decisions from verified pairs (earlier, later, similarity): walking in stable
    order, a document goes when it matches an earlier document that stays; it names the earliest."""
    partners: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for earlier, later, similarity in pairs:
        partners[later].append((earlier, similarity))
    removed: set[int] = set()
    duplicates = []
    for later in sorted(partners):
        kept = [(earlier, sim) for earlier, sim in sorted(partners[later]) if earlier not in removed]
        if kept:
            removed.add(later)
            duplicates.append(Duplicate(later, kept[0][0], NEAR, kept[0][1]))
    return duplicates


def signature_rows(texts: Sequence[str], params: MinHashParams, seeds: np.ndarray | None = None) -> dict[str, list]:
    """What the corpus-wide decision needs of each document, without its text: the exact-match key,
    the shingle count and one 64-bit key per band."""
    seeds = _permutation_seeds(params) if seeds is None else seeds
    exact, counts, bands = [], [], []
    for text in texts:
        exact.append(xxhash.xxh3_128_hexdigest(normalise_for_matching(text).encode("utf-8", "surrogatepass")))
        shingle_set = shingles(text, params.ngram)
        counts.append(len(shingle_set))
        if len(shingle_set) == 0:
            bands.append([])
            continue
        sig = signature(shingle_set, seeds)
        bands.append([xxhash.xxh3_64_intdigest(sig[b * params.rows : (b + 1) * params.rows].tobytes()) for b in range(params.bands)])
    return {"exact": exact, "shingles": counts, "bands": bands}


def find_duplicates(
    texts: Sequence[str],
    params: MinHashParams,
    exact: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[Duplicate]:
    """All duplicates in `texts` (already in stable order); each names the earlier document it duplicates."""
    duplicates, candidates = exact_duplicates(texts) if exact else ([], list(range(len(texts))))
    duplicates += near_duplicates(texts, candidates, params, progress)
    return sorted(duplicates, key=lambda d: d.removed)

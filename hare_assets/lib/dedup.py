"""Exact and MinHash-LSH near-duplicate detection across sources.

Documents arrive in a stable order (profile source order, shard, row). Exact
duplicates share a normalised-text hash; near-duplicates share a MinHash band,
and with `verify` a candidate pair is joined only when the exact Jaccard
similarity of their shingle sets reaches the threshold. In each cluster the
document that comes first in the stable order is kept, so two runs over the same
input make the same decisions. Band/row choice defaults to text-dedup's
`optimal_param` when a profile gives only a threshold.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

from hare_assets.lib.text_rules import _mix, ngram_hashes

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")
_MAX_HASH_CHUNK = 8192  # shingles per block when computing signatures; bounds memory on whole books

EXACT = "exact_duplicate"
NEAR = "near_duplicate"


class UnionFind:
    """Disjoint sets with path compression; the smallest index is the root. (text-dedup's UnionFind would do, but importing
    `text_dedup.utils` pulls in `datasets`, pandas and scipy: about 165 MiB and a second.)"""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = self.parent.setdefault(x, x)
        while self.parent[root] != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


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
    """MinHash-LSH over `candidates`; in each cluster the smallest index is kept."""
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

    union = UnionFind()
    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        head = members[0]
        for other in members[1:]:
            if (head, other) in checked:
                continue
            checked.add((head, other))
            if not params.verify or jaccard(sets[head], sets[other]) >= params.threshold:
                union.union(head, other)

    clusters: dict[int, list[int]] = defaultdict(list)
    for i in {i for pair in checked for i in pair}:
        clusters[union.find(i)].append(i)
    duplicates = []
    for members in clusters.values():
        kept, *rest = sorted(members)
        duplicates.extend(Duplicate(r, kept, NEAR, jaccard(sets[kept], sets[r])) for r in rest)
    return duplicates


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

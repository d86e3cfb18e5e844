"""Benchmark decontamination: an exact word n-gram index of every benchmark view, and a fast scanner.

Words are what `dedup.normalise_for_matching` leaves (NFKC, lower-case, punctuation dropped,
whitespace collapsed), so "Venus?" and "venus" match. An n-gram's key is the project's 64-bit
`text_rules.ngram_hashes` over per-word hashes. The index keeps the sorted unique keys and the
items holding each (CSR arrays, ~20 bytes per n-gram). A scan never reports a hash coincidence:
every key hit is checked against the actual words of that item's n-grams (rebuilt from its
views on demand), so reported hits are exact.

Speed comes from doing the per-word work in numpy rather than a Python dict lookup per n-gram:
texts are joined in chunks, code points classified with a table, words hashed with a polynomial
prefix sum, and only windows whose every word bigram occurs somewhere in the benchmarks (a
bitset test) get a full n-gram key and a binary search.

Rates of one document of L words at n-gram size n ("matched": found word for word in an item):

- `positions`: matched n-gram positions / (L - n + 1): HARE's "n-gram repetition rate" as written.
  An item making up a share s of a document scores (sL - n + 1)/(L - n + 1) < s, so a threshold
  of 0.5 never fires at s = 0.5, and each changed word removes n positions (DESIGN §4).
- `coverage`: share of the L words that matched items explain: each exact match is extended
  along its item through a few substituted, inserted or dropped words (`_extend`), and stretches
  at most `bridge` words apart are joined. An item making up half a document scores 0.5 even
  with a few words changed. The default rules use it.
- `strict`: 1.0 if any n-gram matched (the usual "any 13-gram overlap" rule), else 0.0.

Documents shorter than n words have no n-grams and rate 0 under every definition.

Item share (the other direction): the share of one item's view that the document's matched
stretches cover (best view), e.g. 1.0 when a question and its answer are quoted whole inside a
long web page. HARE's rates are sample-centric and, by construction, never fire on such a page;
`DecontamRule.min_item_share` also removes a document that contains that much of any item.
"""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hare_assets.lib.benchmarks import BenchmarkItem
from hare_assets.lib.dedup import normalise_for_matching
from hare_assets.lib.text_rules import _mix, ngram_hashes

Rate = Literal["coverage", "positions", "strict"]
RATES: tuple[Rate, ...] = ("coverage", "positions", "strict")

_CHUNK_CHARS = 1 << 21  # texts joined per numpy pass; bounds the working set (~100 MiB)
_SEP = "\n"  # between joined texts: not a word character, so no word or n-gram spans two texts
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible mod 2^64
_FORMAT_VERSION = 1
_GRAM_CACHE = 8192  # items whose n-grams are kept for verification
U64 = np.uint64


@dataclass(frozen=True)
class DecontamRule:
    """When a document counts as contaminated: `rate >= threshold` at n-gram size `n`.

    HARE drops a sample whose rate is "above 50%"; the bound is inclusive here so that an item
    making up exactly half a document is caught. `strict` ignores the threshold (any hit).
    `bridge` (coverage only) is the longest run of unexplained words between two matched
    stretches that still counts as covered; None means n.

    Defaults, measured on real benchmark items planted in real corpus text (share >= 0.5,
    verbatim / case+punctuation / a few words changed): n=13 catches 99.9% of items of at least
    26 words, n=8 99.9% of items of at least 16 words; neither flagged any of 8,270 real corpus
    documents. HARE's ranges: n = 10-15 for long synthetic text (D2), 4-8 for short task text (D3).
    """

    n: int = 13
    rate: Rate = "coverage"
    threshold: float = 0.5
    bridge: int | None = None
    min_item_share: float | None = None  # also fire when a document holds this share of one item (None: off)

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("n must be at least 2")
        if self.rate not in RATES:
            raise ValueError(f"rate must be one of {RATES}, not {self.rate!r}")

    @property
    def gap(self) -> int:
        return self.n if self.bridge is None else self.bridge

    def fires(self, rate: float, hits: Sequence[Hit] = ()) -> bool:
        if rate > 0 and (self.rate == "strict" or rate >= self.threshold):
            return True
        return self.min_item_share is not None and any(h.item_share >= self.min_item_share for h in hits)


D1_RULE = DecontamRule(n=13)  # documents and long synthetic text (D1, D2)
D3_RULE = DecontamRule(n=8)  # short task text (D3): items are often under 2 x 13 words


@dataclass(frozen=True)
class Hit:
    benchmark: str
    split: str
    item_id: str
    matched_ngrams: int  # the document's n-gram positions found, word for word, in this item
    item_share: float = 0.0  # share of the item's best view that the document covers


@dataclass(frozen=True)
class ScanResult:
    """One document against the index."""

    n: int
    words: int
    matched: tuple[int, ...]  # word positions whose n-gram is, word for word, in a benchmark item
    covered: tuple[tuple[int, int], ...]  # [start, end) word ranges explained by matched items (see _extend)
    ngrams: tuple[str, ...]  # distinct matched n-grams, normalised words joined by spaces
    spans: tuple[tuple[int, int], ...]  # the covered ranges as [start, end) character offsets in the original text
    hits: tuple[Hit, ...]  # most matched n-grams first

    def rate(self, kind: Rate = "coverage", bridge: int | None = None) -> float:
        return _rate(kind, self.matched, self.covered, self.words, self.n, self.n if bridge is None else bridge)

    @property
    def positions(self) -> float:
        return self.rate("positions")

    @property
    def coverage(self) -> float:
        return self.rate("coverage")

    @property
    def strict(self) -> float:
        return self.rate("strict")


def is_contaminated(result: ScanResult, rule: DecontamRule = D1_RULE) -> bool:
    if result.n != rule.n:
        raise ValueError(f"scanned with n={result.n}, rule wants n={rule.n}")
    return rule.fires(result.rate(rule.rate, rule.gap), result.hits)


def _rate(kind: Rate, matched: Sequence[int], covered: Sequence[tuple[int, int]], words: int, n: int, bridge: int) -> float:
    if not len(matched):
        return 0.0
    if kind == "strict":
        return 1.0
    if kind == "positions":
        return len(matched) / max(1, words - n + 1)
    return sum(b - a for a, b in _merge(covered, bridge)) / words


def _merge(ranges: Iterable[tuple[int, int]], bridge: int) -> list[tuple[int, int]]:
    """Union of [a, b) word ranges; ranges at most `bridge` words apart are joined (the words between count)."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + bridge:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


_SKIPS = sorted(((di, dj) for di in range(5) for dj in range(5) if di or dj), key=lambda d: (max(d), -min(d), d))


def _extend(doc: Sequence[str], p: int, n: int, view: Sequence[str], q: int, look: int = 2) -> tuple[int, int, int, int]:
    """Grow an exact match (doc[p:p+n] == view[q:q+n]) along the item's view, word by word, in both
    directions: a small banded alignment. At a differing word the walk skips up to 4 words on
    either side (substituted, inserted or dropped words; a `<<calc>>` note turned into one word)
    when the next `look` words (one more for skips longer than one word) agree again, or passes
    one changed word at the view's edge; otherwise the stretch ends. This is what lets `coverage`
    count an item with a few words changed, which n-grams alone cannot: each edit kills n of them.
    Returns the stretch as [start, end) in the document and in the view."""

    def agree(i: int, j: int, step: int, need: int, lenient: bool) -> bool:
        for k in range(need):
            a, b = i + step * k, j + step * k
            if not 0 <= b < len(view):
                return lenient and k > 0 or (lenient and k == 0 and b == (len(view) if step > 0 else -1))
            if not 0 <= a < len(doc) or doc[a] != view[b]:
                return False
        return True

    def walk(i: int, j: int, step: int) -> tuple[int, int]:
        while 0 <= i < len(doc) and 0 <= j < len(view):
            if doc[i] != view[j]:
                for di, dj in _SKIPS:
                    single = di <= 1 and dj <= 1
                    if agree(i + step * di, j + step * dj, step, look if single else look + 1, single):
                        break
                else:
                    break
                i, j = i + step * (di - 1), j + step * (dj - 1)  # land just before the agreeing words
            i, j = i + step, j + step
        return i, j

    (a, va), (b, vb) = walk(p - 1, q - 1, -1), walk(p + n, q + n, 1)
    return a + 1, b, max(va + 1, 0), min(vb, len(view))


# --- words -------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _word_table() -> np.ndarray:
    """Per code point: is it a regex `\\w` character (what normalise_for_matching keeps)."""
    chars = "".join(map(chr, range(0x110000)))
    marked = re.sub(r"\W", "\0", chars)
    return np.frombuffer(marked.encode("utf-32-le", "surrogatepass"), dtype=np.uint32) != 0


class _Powers:
    """B^i and B^-i mod 2^64 for the polynomial word hash, grown on demand (kept: ~32 MiB)."""

    def __init__(self) -> None:
        self.up = self.down = np.empty(0, dtype=U64)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.up) < size:
            size = max(size, _CHUNK_CHARS + 1)
            self.up = _powers(int(_BASE), size)
            self.down = _powers(pow(int(_BASE), -1, 1 << 64), size)
        return self.up, self.down


def _powers(base: int, size: int) -> np.ndarray:
    out = np.full(size, base, dtype=U64)
    out[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(out, dtype=U64)


_POWERS = _Powers()


def normalise_words_text(text: str) -> str:
    """NFKC + lower-case: the same characters normalise_for_matching splits into words."""
    return text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).lower()


@dataclass
class _Words:
    """Words of several texts joined by _SEP: hashes, [start, end) offsets in `joined`, owning text."""

    joined: str
    hashes: np.ndarray  # uint64
    starts: np.ndarray  # int64 char offsets
    ends: np.ndarray
    text_of: np.ndarray  # int64 index of the owning text (in the batch)
    first_word: np.ndarray  # per text: index of its first word (len = texts + 1)

    def words(self, lo: int, hi: int) -> list[str]:
        return [self.joined[s:e] for s, e in zip(self.starts[lo:hi].tolist(), self.ends[lo:hi].tolist())]


def _tokenize(texts: Sequence[str]) -> _Words:
    """Word hashes of normalised texts in one numpy pass (texts are already NFKC + lower-cased)."""
    joined = _SEP.join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    is_word = _word_table()[codes].view(np.int8)
    edges = np.diff(is_word, prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    up, down = _POWERS.get(len(codes) + 1)
    with np.errstate(over="ignore"):
        prefix = np.empty(len(codes) + 1, dtype=U64)
        prefix[0] = 0
        np.cumsum(codes.astype(U64) * up[: len(codes)], out=prefix[1:])
        raw = (prefix[ends] - prefix[starts]) * down[starts]
        hashes = _mix(raw ^ (ends - starts).astype(U64))  # length too: cheap insurance
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    text_starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    text_of = np.searchsorted(text_starts, starts, side="right") - 1
    first_word = np.searchsorted(text_of, np.arange(len(texts) + 1), side="left")
    return _Words(joined, hashes, starts, ends, text_of, first_word)


def _ngram_keys_at(hashes: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """`ngram_hashes(hashes, n)[at]` without hashing the other windows."""
    acc = np.zeros(len(at), dtype=U64)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc = _mix(acc ^ hashes[at + k])
    return acc


def _same_text_windows(text_of: np.ndarray, width: int) -> np.ndarray:
    """Start positions of windows of `width` words that lie inside one text."""
    count = len(text_of) - width + 1
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(text_of[: count] == text_of[width - 1 :])


def _chunks(texts: Sequence[str], limit: int = _CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    start, size = 0, 0
    for i, text in enumerate(texts):
        if size and size + len(text) > limit:
            yield start, i
            start, size = i, 0
        size += len(text) + 1
    if start < len(texts):
        yield start, len(texts)


# --- the index ---------------------------------------------------------------------------------


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted unique values (np.unique on uint64 is hash-based and ~15x slower in numpy 2.4)."""
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if len(x) else x


class _BigramFilter:
    """A bitset over the word-bigram hashes of every view: a window can only match if all its bigrams are set."""

    def __init__(self, bigrams: np.ndarray) -> None:
        bits = max(16, int(np.ceil(np.log2(max(1, len(bigrams)) * 16))))  # ~6% of slots set
        self.shift = U64(64 - bits)
        marks = np.zeros(1 << bits, dtype=bool)
        marks[(bigrams >> self.shift).astype(np.intp)] = True
        self.bits = np.packbits(marks, bitorder="little")

    def contains(self, bigrams: np.ndarray) -> np.ndarray:
        slots = bigrams >> self.shift
        return (self.bits[(slots >> U64(3)).astype(np.intp)] >> (slots & U64(7)).astype(np.uint8)) & 1 == 1


@dataclass
class NgramIndex:
    """Sorted unique n-gram keys of every view of every item, and which items hold each key (CSR)."""

    n: int
    keys: np.ndarray  # uint64, sorted, unique
    offsets: np.ndarray  # int64, len(keys) + 1: postings of keys[i] are items[offsets[i]:offsets[i + 1]]
    items: np.ndarray  # uint32 positions into `catalog`
    catalog: list[tuple[str, str, str]]  # (benchmark, split, item_id) per item
    views: list[tuple[str, ...]]  # per item, for verification and the bigram filter
    _filter: _BigramFilter | None = field(default=None, repr=False)
    _grams: dict[int, tuple] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, items: Sequence[BenchmarkItem], n: int) -> NgramIndex:
        if n < 2:
            raise ValueError("n must be at least 2")
        catalog = [(it.benchmark, it.split, it.item_id) for it in items]
        if len(set(catalog)) != len(catalog):
            raise ValueError("duplicate (benchmark, split, item_id) among the items")
        return cls._from_views(n, catalog, [tuple(it.views) for it in items])

    @classmethod
    def _from_views(cls, n: int, catalog: list[tuple[str, str, str]], views: list[tuple[str, ...]]) -> NgramIndex:
        keys, owners, bigrams = cls._hash_views(views, n)
        order = np.lexsort((owners, keys))
        keys, owners = keys[order], owners[order]
        fresh = np.ones(len(keys), dtype=bool)
        fresh[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
        keys, owners = keys[fresh], owners[fresh]
        new_key = np.ones(len(keys), dtype=bool)
        new_key[1:] = keys[1:] != keys[:-1]
        offsets = np.append(np.flatnonzero(new_key), len(keys)).astype(np.int64)
        index = cls(n, keys[new_key], offsets, owners.astype(np.uint32), catalog, views)
        index._filter = _BigramFilter(bigrams)
        return index

    @staticmethod
    def _hash_views(views: list[tuple[str, ...]], n: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n-gram keys, owning item per key, unique bigram keys) of every view; n=None: bigrams only."""
        flat = [normalise_words_text(v) for vs in views for v in vs]
        owner_of_view = np.repeat(np.arange(len(views), dtype=np.int64), [len(vs) for vs in views])
        keys, owners, bigrams = [], [], []
        for lo, hi in _chunks(flat):
            words = _tokenize(flat[lo:hi])
            if n is not None:
                at = _same_text_windows(words.text_of, n)
                keys.append(ngram_hashes(words.hashes, n)[at])
                owners.append(owner_of_view[lo + words.text_of[at]])
            pairs = _same_text_windows(words.text_of, 2)
            bigrams.append(_unique(ngram_hashes(words.hashes, 2)[pairs]))
        cat = lambda parts, dt: np.concatenate(parts) if parts else np.empty(0, dtype=dt)  # noqa: E731
        return cat(keys, U64), cat(owners, np.int64), _unique(cat(bigrams, U64))

    @property
    def filter(self) -> _BigramFilter:
        if self._filter is None:
            self._filter = _BigramFilter(self._hash_views(self.views, None)[2])
        return self._filter

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.offsets.nbytes + self.items.nbytes + self.filter.bits.nbytes

    def stats(self) -> dict[str, int]:
        per = Counter(self.catalog[i][0] for i in range(len(self.catalog)))
        return {"n": self.n, "items": len(self.catalog), "ngrams": len(self.keys), "postings": len(self.items),
                "bytes": self.nbytes, **{f"items_{b}": c for b, c in sorted(per.items())}}

    # --- persistence: two Parquet tables, so an asset can materialize them ---------------------

    def to_tables(self) -> tuple[pa.Table, pa.Table]:
        """(postings, items). postings: one row per (n-gram key, item), sorted by key; items: the catalog and views."""
        counts = np.diff(self.offsets)
        postings = pa.table({
            "n": pa.array(np.full(len(self.items), self.n, dtype=np.uint8)),
            "key": pa.array(np.repeat(self.keys, counts)),
            "item": pa.array(self.items),
        })
        items = pa.table({
            "item": pa.array(np.arange(len(self.catalog), dtype=np.uint32)),
            "benchmark": [c[0] for c in self.catalog],
            "split": [c[1] for c in self.catalog],
            "item_id": [c[2] for c in self.catalog],
            "views": pa.array([list(v) for v in self.views], type=pa.list_(pa.string())),
        })
        meta = {b"hare.decontam.format": str(_FORMAT_VERSION).encode(), b"hare.decontam.n": str(self.n).encode()}
        return postings.replace_schema_metadata(meta), items.replace_schema_metadata(meta)

    @classmethod
    def from_tables(cls, postings: pa.Table, items: pa.Table, n: int | None = None) -> NgramIndex:
        """Inverse of to_tables; `postings` may hold several n (pass `n` to pick one). Polars frames work too."""
        postings, items = _arrow(postings), _arrow(items)
        sizes = np.unique(postings.column("n").to_numpy()) if postings.num_rows else np.array([n or 0])
        if n is None:
            if len(sizes) != 1:
                raise ValueError(f"postings hold n = {sizes.tolist()}; pick one")
            n = int(sizes[0])
        keys = postings.column("key").to_numpy()
        owners = postings.column("item").to_numpy().astype(np.uint32)
        if len(sizes) > 1:
            mask = postings.column("n").to_numpy() == n
            keys, owners = keys[mask], owners[mask]
        if len(keys) > 1 and not np.all(keys[1:] >= keys[:-1]):
            order = np.lexsort((owners, keys))
            keys, owners = keys[order], owners[order]
        new_key = np.ones(len(keys), dtype=bool)
        new_key[1:] = keys[1:] != keys[:-1]
        offsets = np.append(np.flatnonzero(new_key), len(keys)).astype(np.int64)
        order = np.argsort(items.column("item").to_numpy(), kind="stable")
        cols = {c: items.column(c).to_pylist() for c in ("benchmark", "split", "item_id", "views")}
        catalog = [(cols["benchmark"][i], cols["split"][i], cols["item_id"][i]) for i in order]
        views = [tuple(cols["views"][i]) for i in order]
        return cls(n, keys[new_key], offsets, owners, catalog, views)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """`<folder>/postings.parquet` and `<folder>/items.parquet`, each written to a temporary name and renamed."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in zip(("postings", "items"), self.to_tables()):
            tmp = folder / f"{name}.parquet.tmp-{uuid.uuid4().hex}"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, folder / f"{name}.parquet")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str], n: int | None = None) -> NgramIndex:
        folder = Path(folder)
        return cls.from_tables(pq.read_table(folder / "postings.parquet"), pq.read_table(folder / "items.parquet"), n)

    # --- verification --------------------------------------------------------------------------

    def item_grams(self, item: int) -> tuple[tuple[tuple[str, ...], ...], dict[tuple[str, ...], list[tuple[int, int]]]]:
        """The item's views as word lists (through normalise_for_matching, the reference definition) and
        where each of its n-grams starts: {words: [(view, position), ...]}. Built on demand for items a
        scan hits, to verify and extend hits; a bounded per-index cache."""
        cached = self._grams.get(item)
        if cached is None:
            views = tuple(tuple(normalise_for_matching(v).split()) for v in self.views[item])
            grams: dict[tuple[str, ...], list[tuple[int, int]]] = {}
            for v, words in enumerate(views):
                for q in range(len(words) - self.n + 1):
                    grams.setdefault(words[q : q + self.n], []).append((v, q))
            if len(self._grams) >= _GRAM_CACHE:
                self._grams.clear()
            cached = self._grams[item] = (views, grams)
        return cached

    def postings(self, key_pos: int) -> np.ndarray:
        return self.items[self.offsets[key_pos] : self.offsets[key_pos + 1]]


def _arrow(table) -> pa.Table:
    return table if isinstance(table, pa.Table) else table.to_arrow()


# --- scanning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DocMatches:
    words: int
    matched: tuple[int, ...]  # word positions, sorted
    covered: tuple[tuple[int, int], ...]
    per_item: dict[int, int]  # item -> matched positions
    grams: dict[int, tuple[str, ...]]  # position -> its words (verified)
    item_share: dict[int, float]  # item -> share of its best view covered


def _match_chunk(index: NgramIndex, words: _Words) -> dict[int, _DocMatches]:
    """Verified matches per text of one tokenized chunk (texts without any are left out)."""
    n = index.n
    starts = _same_text_windows(words.text_of, n)
    if not len(starts) or not len(index.keys):
        return {}
    pair_ok = index.filter.contains(ngram_hashes(words.hashes, 2))
    bad = np.concatenate(([0], np.cumsum(~pair_ok)))
    starts = starts[bad[starts + n - 1] - bad[starts] == 0]  # every bigram of the window is a benchmark bigram
    if not len(starts):
        return {}
    keys = _ngram_keys_at(words.hashes, starts, n)
    pos = np.searchsorted(index.keys, keys)
    pos[pos == len(index.keys)] = 0
    found = index.keys[pos] == keys
    by_text: dict[int, list[tuple[int, int]]] = {}
    for start, key_pos in zip(starts[found].tolist(), pos[found].tolist()):
        by_text.setdefault(int(words.text_of[start]), []).append((start, key_pos))
    out = {}
    for t, found_here in by_text.items():
        first, last = int(words.first_word[t]), int(words.first_word[t + 1])
        doc = _verify(index, words.words(first, last), [(s - first, k) for s, k in found_here])
        if doc is not None:
            out[t] = doc
    return out


def _verify(index: NgramIndex, doc: list[str], found: list[tuple[int, int]]) -> _DocMatches | None:
    """Keep the key hits whose words really are an n-gram of a posted item; extend each along that item."""
    n = index.n
    matched, grams, covered = [], {}, []
    per_item: Counter[int] = Counter()
    reach: dict[int, int] = {}  # item -> end of its last extension (later positions inside it need none)
    in_view: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (item, view) -> covered [start, end) of the view
    for p, key_pos in found:
        gram = tuple(doc[p : p + n])
        hit = False
        for item in index.postings(key_pos).tolist():
            views, item_grams = index.item_grams(item)
            places = item_grams.get(gram)
            if not places:
                continue  # a 64-bit coincidence: never reported
            hit = True
            per_item[item] += 1
            if p + n <= reach.get(item, -1):
                continue
            spans = [_extend(doc, p, n, views[v], q) for v, q in places]  # every one contains [p, p + n)
            span = (min(s[0] for s in spans), max(s[1] for s in spans))
            for (v, _), (_, _, va, vb) in zip(places, spans):
                in_view.setdefault((item, v), []).append((va, vb))
            covered.append(span)
            reach[item] = max(reach.get(item, -1), span[1])
        if hit:
            matched.append(p)
            grams[p] = gram
    if not matched:
        return None
    share: dict[int, float] = {}
    for (item, v), ranges in in_view.items():
        size = len(index.item_grams(item)[0][v])
        share[item] = max(share.get(item, 0.0), sum(b - a for a, b in _merge(ranges, 0)) / max(size, 1))
    return _DocMatches(len(doc), tuple(matched), tuple(_merge(covered, 0)), dict(per_item), grams, share)


def _hits(index: NgramIndex, doc: _DocMatches) -> tuple[Hit, ...]:
    ranked = sorted(doc.per_item.items(), key=lambda kv: (-kv[1], index.catalog[kv[0]]))
    return tuple(Hit(*index.catalog[i], matched_ngrams=c, item_share=round(doc.item_share.get(i, 0.0), 4)) for i, c in ranked)


def scan(text: str, index: NgramIndex) -> ScanResult:
    """One document, with everything a report needs: matched n-grams, spans in `text`, hits per item."""
    norm = normalise_words_text(text)
    words = _tokenize([norm])
    doc = _match_chunk(index, words).get(0)
    total = int(words.first_word[1])
    if doc is None:
        return ScanResult(index.n, total, (), (), (), (), ())
    grams = tuple(dict.fromkeys(" ".join(doc.grams[p]) for p in doc.matched))
    starts, ends = _original_offsets(text, norm, words)
    spans = tuple((int(starts[a]), int(ends[b - 1])) for a, b in doc.covered)
    return ScanResult(index.n, total, doc.matched, doc.covered, grams, spans, _hits(index, doc))


def _original_offsets(text: str, norm: str, words: _Words) -> tuple[np.ndarray, np.ndarray]:
    """Word [start, end) offsets in the original text. Lower-casing and NFKC usually keep offsets; when
    they do not, each original \\w-run is normalised alone and its words take the run's span."""
    if len(norm) == len(text) and (text.isascii() or unicodedata.is_normalized("NFKC", text)):
        return words.starts, words.ends
    starts, ends = [], []
    for m in re.finditer(r"\w+", text):
        for _ in normalise_for_matching(m.group()).split():
            starts.append(m.start())
            ends.append(m.end())
    if len(starts) != len(words.starts):  # a character whose normal form splits or joins words: scale
        ratio = len(text) / max(1, len(norm))
        return (words.starts * ratio).astype(np.int64), np.minimum(len(text), (words.ends * ratio).astype(np.int64) + 1)
    return np.asarray(starts), np.asarray(ends)


@dataclass(frozen=True)
class BatchScan:
    """Per document: the rule's rate and the hits. Documents without hits have rate 0 and no entry."""

    rule: DecontamRule
    rates: np.ndarray  # float64, one per document
    hits: dict[int, tuple[Hit, ...]]
    details: dict[int, _DocMatches] = field(repr=False)

    def __len__(self) -> int:
        return len(self.rates)

    def __getitem__(self, i: int) -> tuple[float, tuple[Hit, ...]]:
        return float(self.rates[i]), self.hits.get(i, ())

    def __iter__(self) -> Iterator[tuple[float, tuple[Hit, ...]]]:
        return (self[i] for i in range(len(self)))

    @property
    def contaminated(self) -> np.ndarray:
        out = np.zeros(len(self.rates), dtype=bool)
        for i in self.hits:
            out[i] = self.rule.fires(float(self.rates[i]), self.hits[i])
        return out

    def rate(self, i: int, kind: Rate) -> float:
        """Document i under another rate definition (same n and bridge)."""
        d = self.details.get(i)
        return 0.0 if d is None else _rate(kind, d.matched, d.covered, d.words, self.rule.n, self.rule.gap)


def scan_batch(texts: Sequence[str], index: NgramIndex, rule: DecontamRule | None = None) -> BatchScan:
    """Many documents at once (the asset's path): per document the rule's rate and its hits."""
    rule = rule or DecontamRule(n=index.n)
    if rule.n != index.n:
        raise ValueError(f"index has n={index.n}, rule wants n={rule.n}")
    rates = np.zeros(len(texts), dtype=np.float64)
    hits: dict[int, tuple[Hit, ...]] = {}
    details: dict[int, _DocMatches] = {}
    for lo, hi in _chunks(texts):
        words = _tokenize([normalise_words_text(t) for t in texts[lo:hi]])
        for t, doc in _match_chunk(index, words).items():
            i = lo + t
            rates[i] = _rate(rule.rate, doc.matched, doc.covered, doc.words, rule.n, rule.gap)
            hits[i] = _hits(index, doc)
            details[i] = doc
    return BatchScan(rule, rates, hits, details)


def iter_scan(texts: Iterable[str], index: NgramIndex, rule: DecontamRule | None = None, batch: int = 4096) -> Iterator[tuple[float, tuple[Hit, ...]]]:
    """scan_batch over a stream, `batch` documents at a time (bounded memory for 10^6 documents)."""
    buffer: list[str] = []
    for text in texts:
        buffer.append(text)
        if len(buffer) >= batch:
            yield from scan_batch(buffer, index, rule)
            buffer = []
    if buffer:
        yield from scan_batch(buffer, index, rule)

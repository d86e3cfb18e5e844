"""Tokenize documents and pack them into fixed-length training blocks, with block → document provenance.

Convention (the Mistral/Llama one, which HARE inherited): every document becomes
`<s> tokens </s>` (BOS id 1, EOS id 2), documents are concatenated in input order and
the stream is cut into `seq_len`-token blocks. No padding: a block may hold the end of
one document and the start of the next (attention is not reset at document
boundaries, as in TinyLlama/HARE pretraining). The last, partial block of a packing run
is dropped; `PackStats.dropped_tokens` and the header's `dropped_doc_ids` say what was
lost (less than one block). Evaluation must prepend BOS too: the checkpoint's
tokenizer is written with `add_bos_token: true` (see `training.save_checkpoint`).

Layout of a packed directory:

    header.json                      format, seq_len, dtype, counts, shard list (written last)
    tokens-<run>-<i>.bin             raw uint16 tokens, `blocks × seq_len`, C order
    provenance-<run>-<i>.parquet     one row per (block, document) span of shard i

Every file is written to a temporary name and renamed into place, and `header.json`
is renamed last: a reader sees either the previous complete pack or the new one. The
`<run>` tag keeps a re-pack from overwriting files a reader of the old header still maps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from hare_assets.lib.tokenizer import encoder

FORMAT = "hare-packed-v1"
HEADER = "header.json"
PROVENANCE_SCHEMA = {
    "block": pl.Int64,  # global block index
    "doc_index": pl.Int64,  # position of the document in the packing input
    "doc_id": pl.String,
    "doc_start": pl.Int32,  # span in the document's packed tokens (0 is its BOS)
    "doc_end": pl.Int32,
    "block_start": pl.Int32,  # the same span inside the block
    "block_end": pl.Int32,
}
_RUN_FILE = re.compile(r"^(tokens|provenance)-[0-9a-f]{8}-\d{5}\.(bin|parquet)(\.tmp)?$")


@dataclass(frozen=True)
class PackStats:
    documents: int  # documents with at least one token
    empty_documents: int  # documents whose text encodes to no token: skipped
    blocks: int
    seq_len: int
    tokens: int  # tokens kept in blocks (blocks × seq_len)
    dropped_tokens: int  # the final partial block
    shards: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        """Tokenize + pack + write throughput, over every token produced (kept or dropped)."""
        return (self.tokens + self.dropped_tokens) / max(self.seconds, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


def _fsync_replace(tmp: Path, target: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(payload, indent=1))
    _fsync_replace(tmp, path)


def _batches(documents: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    it = iter(documents)
    while batch := list(islice(it, size)):
        yield batch


def _spans(starts: np.ndarray, ends: np.ndarray, seq_len: int) -> tuple[np.ndarray, ...]:
    """Cut documents at global token ranges [starts, ends) into per-block spans (vectorized).

    Returns (doc position in the batch, block, span start, span end), spans in global offsets.
    """
    first, last = starts // seq_len, (ends - 1) // seq_len
    counts = last - first + 1
    doc = np.repeat(np.arange(len(starts)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    block = first[doc] + within
    lo = np.maximum(starts[doc], block * seq_len)
    hi = np.minimum(ends[doc], (block + 1) * seq_len)
    return doc, block, lo, hi


class _ShardWriter:
    """Streams full blocks into `tokens-<run>-<i>.bin`, `blocks_per_shard` blocks per file."""

    def __init__(self, out: Path, run: str, seq_len: int, blocks_per_shard: int, dtype: np.dtype):
        self.out, self.run, self.seq_len, self.per_shard, self.dtype = out, run, seq_len, blocks_per_shard, dtype
        self.shards: list[dict[str, Any]] = []
        self.blocks = 0
        self.digest = xxhash.xxh3_128()  # of every token written, in order: the pack's content
        self._fh = None
        self._in_shard = 0
        self._provenance: list[pl.DataFrame] = []

    def name(self, kind: str, index: int) -> str:
        return f"{kind}-{self.run}-{index:05d}.{'bin' if kind == 'tokens' else 'parquet'}"

    def write(self, tokens: np.ndarray) -> None:
        """Append whole blocks (len(tokens) is a multiple of seq_len)."""
        blocks = tokens.reshape(-1, self.seq_len)
        while len(blocks):
            if self._fh is None:
                self._fh = open(self.out / f"{self.name('tokens', len(self.shards))}.tmp", "wb")
            take = min(len(blocks), self.per_shard - self._in_shard)
            data = np.ascontiguousarray(blocks[:take], dtype=self.dtype).tobytes()
            self._fh.write(data)
            self.digest.update(data)
            self._in_shard += take
            self.blocks += take
            blocks = blocks[take:]
            if self._in_shard == self.per_shard:
                self._close_tokens()

    def _close_tokens(self) -> None:
        if self._fh is None:
            return
        self._fh.close()
        name = self.name("tokens", len(self.shards))
        _fsync_replace(self.out / f"{name}.tmp", self.out / name)
        self.shards.append({"tokens": name, "first_block": self.blocks - self._in_shard, "blocks": self._in_shard})
        self._fh, self._in_shard = None, 0

    def add_provenance(self, frame: pl.DataFrame) -> None:
        """Spans of finished blocks; each closed shard's spans go to its own Parquet file."""
        self._provenance.append(frame)
        self._flush_provenance()

    def _flush_provenance(self) -> None:
        todo = [s for s in self.shards if "provenance" not in s]
        if not todo:
            return
        spans = pl.concat(self._provenance) if self._provenance else pl.DataFrame(schema=PROVENANCE_SCHEMA)
        for shard in todo:
            lo, hi = shard["first_block"], shard["first_block"] + shard["blocks"]
            name = self.name("provenance", self.shards.index(shard))
            part = spans.filter((pl.col("block") >= lo) & (pl.col("block") < hi))
            part.write_parquet(self.out / f"{name}.tmp", compression="zstd", statistics=True)
            _fsync_replace(self.out / f"{name}.tmp", self.out / name)
            shard["provenance"] = name
        self._provenance = [spans.filter(pl.col("block") >= todo[-1]["first_block"] + todo[-1]["blocks"])]

    def finish(self) -> list[dict[str, Any]]:
        """Close the last shard; the caller has added the spans of every finished block."""
        self._close_tokens()
        self._flush_provenance()
        return self.shards


def pack_documents(
    documents: Iterable[tuple[str, str]],
    out_dir: str | Path,
    seq_len: int,
    *,
    shard_tokens: int = 1 << 28,
    batch_size: int = 1024,
    num_threads: int = -1,
    tokenizer: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> PackStats:
    """Tokenize `(doc_id, text)` pairs (e.g. `zip(frame["doc_id"], frame["text"])`) into `out_dir`.

    Streams: memory holds one batch of documents plus one shard's provenance, whatever the
    corpus size. `shard_tokens` (default 2^28 tokens = 512 MiB) is rounded down to whole
    blocks. `num_threads` is SentencePiece's batch-encode threads (-1: all cores). `tokenizer`:
    see `tokenizer.encoder` (default Mistral's SentencePiece model).
    `metadata` (e.g. the mixture manifest's fingerprint) is stored in the header.
    """
    enc = encoder(tokenizer)

    def encoded() -> Iterator[tuple[str, list[int]]]:
        for batch in _batches(documents, batch_size):
            ids, texts = zip(*batch)
            yield from zip(ids, enc.encode(list(texts), num_threads=num_threads))

    return pack_token_ids(encoded(), out_dir, seq_len, shard_tokens=shard_tokens, batch_size=batch_size,
                          tokenizer=tokenizer, metadata=metadata)


def pack_token_ids(
    documents: Iterable[tuple[str, list[int]]],
    out_dir: str | Path,
    seq_len: int,
    *,
    shard_tokens: int = 1 << 28,
    batch_size: int = 1024,
    tokenizer: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> PackStats:
    """Pack `(doc_id, ids)` pairs whose ids `tokenizer` already made (no BOS/EOS; e.g. a token cache):
    the same pack `pack_documents` makes from their texts, without tokenizing again."""
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    enc = encoder(tokenizer)
    vocab = enc.vocab_size
    dtype = np.dtype(np.uint16 if vocab <= 1 << 16 else np.uint32)
    run = uuid.uuid4().hex[:8]
    writer = _ShardWriter(out, run, seq_len, max(1, shard_tokens // seq_len), dtype)

    carry = np.empty(0, dtype=np.int64)  # tokens of the block being filled
    pending: list[pl.DataFrame] = []  # spans of the block being filled
    offset = 0  # global offset of the next document's BOS
    doc_index = 0
    documents_n = empty = 0
    for batch in _batches(documents, batch_size):
        ids, encoded = zip(*batch)
        keep = [i for i, e in enumerate(encoded) if e]
        empty += len(batch) - len(keep)
        doc_index_batch = np.arange(doc_index, doc_index + len(batch))[keep]
        doc_index += len(batch)
        if not keep:
            continue
        documents_n += len(keep)
        lens = np.fromiter((len(encoded[i]) + 2 for i in keep), dtype=np.int64, count=len(keep))
        flat = np.fromiter(
            chain.from_iterable(chain((enc.bos_id,), encoded[i], (enc.eos_id,)) for i in keep),
            dtype=np.int64,
            count=int(lens.sum()),
        )
        ends = offset + np.cumsum(lens)
        starts = ends - lens
        doc, block, lo, hi = _spans(starts, ends, seq_len)
        spans = pl.DataFrame(
            {
                "block": block,
                "doc_index": doc_index_batch[doc],
                "doc_id": pl.Series([ids[keep[d]] for d in doc], dtype=pl.String),
                "doc_start": lo - starts[doc],
                "doc_end": hi - starts[doc],
                "block_start": lo - block * seq_len,
                "block_end": hi - block * seq_len,
            },
            schema=PROVENANCE_SCHEMA,
        )
        offset = int(ends[-1])
        stream = np.concatenate([carry, flat])
        full = len(stream) // seq_len * seq_len
        writer.write(stream[:full])
        carry = stream[full:]
        done = writer.blocks
        pending.append(spans)
        merged = pl.concat(pending)
        writer.add_provenance(merged.filter(pl.col("block") < done))
        pending = [merged.filter(pl.col("block") >= done)]

    shards = writer.finish()  # pending spans belong to the dropped partial block
    dropped = pl.concat(pending)["doc_id"].unique(maintain_order=True).to_list() if pending else []
    stats = PackStats(
        documents=documents_n,
        empty_documents=empty,
        blocks=writer.blocks,
        seq_len=seq_len,
        tokens=writer.blocks * seq_len,
        dropped_tokens=len(carry),
        shards=len(shards),
        seconds=time.perf_counter() - started,
    )
    _write_json(
        out / HEADER,
        {
            "format": FORMAT,
            "seq_len": seq_len,
            "dtype": dtype.name,
            "vocab_size": vocab,
            "bos_id": enc.bos_id,
            "eos_id": enc.eos_id,
            "layout": "<s> document </s>, concatenated, cut into seq_len blocks; last partial block dropped",
            "tokenizer": {"spec": enc.spec, "fingerprint": enc.fingerprint},
            "shards": shards,
            "dropped_doc_ids": dropped,
            "metadata": metadata or {},
            "content": writer.digest.hexdigest(),
            "stats": stats.as_dict(),
        },
    )
    keep_files = {s["tokens"] for s in shards} | {s["provenance"] for s in shards}
    for stale in out.iterdir():  # files of earlier packs (and temporaries of killed ones)
        if _RUN_FILE.match(stale.name) and stale.name not in keep_files:
            stale.unlink(missing_ok=True)
    return stats


class PackedDataset:
    """Read-only view of a packed directory: blocks by index from memory-mapped shards."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        header_path = self.path / HEADER
        if not header_path.exists():
            raise FileNotFoundError(f"{self.path} holds no packed dataset ({HEADER} missing)")
        self.header: dict[str, Any] = json.loads(header_path.read_text())
        if self.header.get("format") != FORMAT:
            raise ValueError(f"{header_path}: format {self.header.get('format')!r}, expected {FORMAT!r}")
        self.seq_len: int = self.header["seq_len"]
        dtype = np.dtype(self.header["dtype"])
        self._shards = [
            np.memmap(self.path / s["tokens"], dtype=dtype, mode="r", shape=(s["blocks"], self.seq_len))
            for s in self.header["shards"]
        ]
        self._firsts = np.array([s["first_block"] for s in self.header["shards"]], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.header["stats"]["blocks"])

    @property
    def num_tokens(self) -> int:
        return len(self) * self.seq_len

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"block {index} out of range for {len(self)} blocks")
        index %= len(self)
        shard = int(np.searchsorted(self._firsts, index, side="right") - 1)
        return self._shards[shard][index - self._firsts[shard]]

    def batch(self, indices: Iterable[int]) -> np.ndarray:
        """(n, seq_len) int64 copy of the given blocks, ready for `torch.from_numpy`."""
        return np.stack([self[int(i)] for i in indices]).astype(np.int64)

    def provenance(self) -> pl.LazyFrame:
        """Every (block, document) span; filter by `block` to trace a block back to its documents."""
        files = [str(self.path / s["provenance"]) for s in self.header["shards"]]
        if not files:
            return pl.LazyFrame(schema=PROVENANCE_SCHEMA)
        return pl.scan_parquet(files)

    def spans(self, index: int) -> pl.DataFrame:
        """The documents in one block, in block order."""
        return self.provenance().filter(pl.col("block") == index).sort("block_start").collect()

    def fingerprint(self) -> str:
        """Identifies the pack's content — its tokens, block shape and tokenizer, not when or where it was
        written — so that packing the same documents again resumes training and names the same checkpoint."""
        h = self.header
        key = [h["format"], h["seq_len"], h["dtype"], h["tokenizer"], h.get("content") or h["shards"], len(self)]
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

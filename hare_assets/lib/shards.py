"""The shard manifest: every shard of every source, grouped into blocks that never change membership.

A block is the unit of D1 work (a dynamic partition such as `web-00042`). Shards are
listed through fsspec (local paths and remote URLs alike). A shard's fingerprint is a
hash of its content, recomputed only when its size or modification time (etag on object
stores) changed since the previous manifest, so a rescan of a large unchanged corpus
reads no data. New shards of a source are packed, in name order, into new blocks of
about `block_bytes`; existing blocks keep their shards. A changed shard stays in its
block with its new fingerprint (the block is redone), a vanished one is marked deleted.
`seq` numbers blocks in the order they were first ingested: the order that decides
which of two duplicates is kept (see `lib/dedup.py`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import polars as pl
import xxhash
from fsspec.core import url_to_fs

from hare_assets.lib.profile import SourceConfig
from hare_assets.lib.readers import list_shards, shard_path

PRESENT, DELETED = "present", "deleted"
MANIFEST_SCHEMA = {
    "source": pl.String, "shard": pl.String, "url": pl.String, "bytes": pl.Int64, "modified": pl.String,
    "fingerprint": pl.String, "block": pl.String, "seq": pl.Int64, "status": pl.String,
}  # fmt: skip
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def block_key(source: str, number: int) -> str:
    return f"{source}-{number:05d}"


def block_number(block: str) -> int:
    return int(block.rsplit("-", 1)[1])


def block_source(block: str) -> str:
    return block.rsplit("-", 1)[0]


def safe_name(shard: str) -> str:
    """A file name for a shard's part files: readable, ASCII, no folders, and unique (a short hash of the
    original name tells `a/b.jsonl` from `a_b.jsonl`)."""
    ascii_name = unicodedata.normalize("NFKD", shard).encode("ascii", "ignore").decode()
    readable = _UNSAFE.sub("_", ascii_name).strip("._")[:80] or "shard"
    return f"{readable}-{xxhash.xxh3_64_hexdigest(shard.encode('utf-8', 'surrogatepass'))[:8]}"


@dataclass(frozen=True)
class ShardFile:
    source: str
    shard: str
    url: str
    bytes: int
    modified: str


def list_source(src: SourceConfig) -> list[ShardFile]:
    """A source's shards with size and modification time (or etag), without reading them."""
    if src.format == "hf":
        assert src.hf is not None
        [name] = list_shards(src)
        return [ShardFile(src.name, name, f"hf://{src.hf.id}", 0, src.hf.revision or "main")]
    fs, _ = url_to_fs(src.path)
    files = []
    for shard in list_shards(src):
        url = shard_path(src, shard)
        info = fs.info(url_to_fs(url)[1])
        modified = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("etag") or info.get("updated") or ""
        files.append(ShardFile(src.name, shard, url, int(info.get("size") or 0), str(modified)))
    return files


def content_fingerprint(file: ShardFile, chunk: int = 8 << 20) -> str:
    """xxh3-128 of the shard's bytes, streamed (hub splits: their id and revision)."""
    if file.url.startswith("hf://"):
        return hashlib.sha256(f"{file.url}@{file.modified}".encode()).hexdigest()[:32]
    fs, path = url_to_fs(file.url)
    digest = xxhash.xxh3_128()
    with fs.open(path, "rb") as fh:
        while data := fh.read(chunk):
            digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class ManifestUpdate:
    manifest: pl.DataFrame
    new_blocks: list[str]
    changed_blocks: list[str]  # existing blocks whose shards changed or vanished: to be redone
    new_shards: list[str]
    changed_shards: list[str]
    deleted_shards: list[str]

    @property
    def blocks_to_run(self) -> list[str]:
        return sorted(set(self.new_blocks) | set(self.changed_blocks))


def listing_fingerprint(file: ShardFile) -> str:
    """A cheap stand-in for the content fingerprint (size and time), for planning without reading shards."""
    return f"{file.bytes}:{file.modified}"


def update_manifest(
    previous: pl.DataFrame | None, listing: Iterable[ShardFile], source_order: list[str], block_bytes: int,
    fingerprint: Callable[[ShardFile], str] = content_fingerprint,
) -> ManifestUpdate:
    """The next manifest from the previous one and a fresh listing (pure apart from hashing new or
    changed shards). Deterministic: the same inputs give the same blocks, so a rescan that finds
    nothing new changes nothing, and a sensor that plans with `listing_fingerprint` names the same
    blocks as the manifest asset will."""
    prev = {} if previous is None else {(r["source"], r["shard"]): r for r in previous.iter_rows(named=True)}
    next_seq = 1 + max((r["seq"] for r in prev.values()), default=-1)
    last_block = {}
    for r in prev.values():
        last_block[r["source"]] = max(last_block.get(r["source"], -1), block_number(r["block"]))
    rows, new_shards, changed, changed_blocks = [], [], [], set()
    fresh: dict[str, list[ShardFile]] = {}
    seen = set()
    for file in listing:
        key = (file.source, file.shard)
        seen.add(key)
        old = prev.get(key)
        if old is None:
            fresh.setdefault(file.source, []).append(file)
            continue
        if old["bytes"] == file.bytes and old["modified"] == file.modified and old["status"] == PRESENT:
            rows.append(old)
            continue
        new_fingerprint = fingerprint(file)
        if new_fingerprint != old["fingerprint"] or old["status"] != PRESENT:
            changed.append(f"{file.source}/{file.shard}")
            changed_blocks.add(old["block"])
        rows.append({**old, "url": file.url, "bytes": file.bytes, "modified": file.modified, "fingerprint": new_fingerprint,
                     "status": PRESENT})
    deleted = []
    for key, old in prev.items():
        if key not in seen:
            if old["status"] == PRESENT:
                deleted.append(f"{key[0]}/{key[1]}")
                changed_blocks.add(old["block"])
            rows.append({**old, "status": DELETED})
    new_blocks = []
    for source in source_order:  # first ingestion of a corpus: profile order, then name order within a source
        number, size = last_block.get(source, -1), None
        for file in sorted(fresh.get(source, []), key=lambda f: f.shard):
            if size is None or size + file.bytes > block_bytes:
                number, size = number + 1, 0
                new_blocks.append(block_key(source, number))
                block_seq = next_seq
                next_seq += 1
            size += file.bytes
            rows.append({"source": source, "shard": file.shard, "url": file.url, "bytes": file.bytes, "modified": file.modified,
                         "fingerprint": fingerprint(file), "block": new_blocks[-1], "seq": block_seq, "status": PRESENT})
            new_shards.append(f"{source}/{file.shard}")
    manifest = pl.DataFrame(rows, schema=MANIFEST_SCHEMA).sort("seq", "shard")
    return ManifestUpdate(manifest, new_blocks, sorted(changed_blocks - set(new_blocks)), new_shards, changed, deleted)


def block_shards(manifest: pl.DataFrame, block: str) -> pl.DataFrame:
    """The present shards of one block, in name order."""
    return manifest.filter((pl.col("block") == block) & (pl.col("status") == PRESENT)).sort("shard")


def membership_fingerprint(manifest: pl.DataFrame, block: str) -> str:
    """What a block holds (shards and their fingerprints): stable run keys and resume checks use it."""
    rows = block_shards(manifest, block).select("shard", "fingerprint").rows()
    return hashlib.sha256(repr(rows).encode("utf-8", "surrogatepass")).hexdigest()[:16]

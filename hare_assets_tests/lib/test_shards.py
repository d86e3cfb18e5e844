"""The shard manifest: stable blocks, new shards in new blocks, changed shards redone in place, deleted ones reported."""

import os

import polars as pl

from hare_assets.lib.profile import SourceConfig
from hare_assets.lib.shards import DELETED, list_source, safe_name, update_manifest


def _write(folder, name: str, size: int, fill: str = "a") -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fill * size)


def _scan(src, previous=None, block_bytes=1000):
    return update_manifest(previous, list_source(src), [src.name], block_bytes)


def test_blocks_are_packed_in_name_order_and_never_change_membership(tmp_path):
    for i, size in enumerate([400, 400, 400, 1500, 100]):
        _write(tmp_path, f"s{i}.jsonl", size)
    src = SourceConfig(name="web", format="jsonl", path=str(tmp_path))
    first = _scan(src)
    blocks = dict(first.manifest.select("shard", "block").iter_rows())
    assert blocks == {"s0.jsonl": "web-00000", "s1.jsonl": "web-00000", "s2.jsonl": "web-00001",
                      "s3.jsonl": "web-00002", "s4.jsonl": "web-00003"}  # a shard bigger than a block is a block alone
    assert first.new_blocks == ["web-00000", "web-00001", "web-00002", "web-00003"]
    assert _scan(src, first.manifest).manifest.equals(first.manifest)  # nothing new: nothing changes
    assert _scan(src, first.manifest).blocks_to_run == []

    _write(tmp_path, "a-early-name.jsonl", 10)  # sorts first, but joins a new block: old blocks keep their shards
    _write(tmp_path, "s5.jsonl", 10)
    second = _scan(src, first.manifest)
    assert second.new_blocks == ["web-00004"] and second.blocks_to_run == ["web-00004"]
    new = second.manifest.filter(pl.col("block") == "web-00004")
    assert sorted(new["shard"]) == ["a-early-name.jsonl", "s5.jsonl"] and set(new["seq"]) == {4}
    old = second.manifest.filter(pl.col("block") != "web-00004").sort("shard")
    assert old.equals(first.manifest.sort("shard"))


def test_a_changed_shard_is_redone_in_its_block_and_a_deleted_one_reported(tmp_path):
    for i in range(3):
        _write(tmp_path, f"s{i}.jsonl", 300)
    src = SourceConfig(name="web", format="jsonl", path=str(tmp_path))
    first = _scan(src)
    (tmp_path / "s0.jsonl").write_text("b" * 300)  # same size, new content
    os.utime(tmp_path / "s0.jsonl", ns=(1, 1))
    os.utime(tmp_path / "s1.jsonl", ns=(2, 2))  # touched only: same content
    (tmp_path / "s2.jsonl").unlink()
    update = _scan(src, first.manifest)
    assert update.changed_shards == ["web/s0.jsonl"] and update.deleted_shards == ["web/s2.jsonl"]
    assert set(first.manifest["block"]) == {"web-00000"} and update.blocks_to_run == ["web-00000"]
    assert update.manifest.filter(pl.col("shard") == "s2.jsonl")["status"].item() == DELETED
    assert update.new_blocks == []


def test_safe_names_are_ascii_unique_and_flat():
    names = ["a/b.jsonl", "a_b.jsonl", "new batch/Gezeiten für alle.jsonl", "日本語.jsonl", "../../etc"]
    safe = [safe_name(n) for n in names]
    assert len(set(safe)) == len(safe)
    assert all(s.isascii() and "/" not in s and " " not in s and not s.startswith(".") for s in safe)
    assert safe[2].startswith("new_batch_Gezeiten_fur_alle.jsonl-")

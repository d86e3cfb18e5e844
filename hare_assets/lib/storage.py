"""Parquet tables under one root (a local path or any fsspec URL), written atomically.

Layout: `<root>/<table>/<partition>.parquet`, with `_all` for unpartitioned tables.
Companion tables share the asset's name: `clean_documents__removed`,
`raw_documents__quarantine`. A write goes to a temporary name beside its target
and is renamed into place, so a killed run leaves the previous file intact and
readers never see half a file.

Block partitions of D1 are folders instead: `<table>/<block>/<part>.parquet`, one
part per shard, each written atomically (streamed row group by row group), and a
`_manifest.json` that lists the parts, written last. Readers see only committed
parts, so a partition is either its previous or its new version. Reading a table
without a partition gives the union of its partitions.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from hare_assets.lib.diskspace import space_guard

UNPARTITIONED = "_all"
PARTS_MANIFEST = "_manifest.json"
RECEIPTS = "_receipts"


@dataclass(frozen=True)
class TableStore:
    root: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return url_to_fs(self.root)[0]

    @property
    def _base(self) -> str:
        return url_to_fs(self.root)[1].rstrip("/")

    def table_dir(self, table: str) -> str:
        return f"{self._base}/{table}"

    def path(self, table: str, partition: str | None = None) -> str:
        return f"{self.table_dir(table)}/{partition or UNPARTITIONED}.parquet"

    @property
    def is_local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def url(self, table: str, partition: str | None = None) -> str:
        """The path as a URL other tools (DuckDB, users) can open (a folder for a partition of part files)."""
        folder = partition is not None and self.committed(table, partition) is not None
        return self.location(self.part_dir(table, partition) if folder else self.path(table, partition))

    def write(self, table: str, frame: pl.DataFrame, partition: str | None = None) -> str:
        """Write atomically: temporary file in the same folder, then rename over the target. The file is
        encoded first, so a full disk or a file-size limit fails with the exact bytes it needed."""
        return self._write_bytes(self.path(table, partition), self.table_dir(table), _encode(frame))

    def _write_bytes(self, target: str, folder: str, data: bytes | memoryview) -> str:
        fs = self.fs
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        try:
            with space_guard(self.location(target), len(data)):
                fs.makedirs(folder, exist_ok=True)
                with fs.open(tmp, "wb") as fh:
                    fh.write(data)
                    self._sync(fh)
                fs.mv(tmp, target)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)
        return target

    def _sync(self, fh) -> None:
        if self.is_local:  # durable before it becomes visible
            fh.flush()
            os.fsync(fh.fileno())

    def location(self, path: str) -> str:
        """A stored path as a URL other tools (DuckDB, users) can open."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    # Part files: partitions that are folders, committed by a manifest.

    def part_dir(self, table: str, partition: str) -> str:
        return f"{self.table_dir(table)}/{partition}"

    def part_path(self, table: str, partition: str, part: str) -> str:
        return f"{self.part_dir(table, partition)}/{part}.parquet"

    def write_part(self, table: str, partition: str, part: str, frame: pl.DataFrame) -> str:
        return self._write_bytes(self.part_path(table, partition, part), self.part_dir(table, partition), _encode(frame))

    @contextmanager
    def part_writer(self, table: str, partition: str, part: str, schema: dict) -> Iterator[PartWriter]:
        """Stream one part row group by row group; it appears under its name only when complete."""
        fs, target = self.fs, self.part_path(table, partition, part)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        fs.makedirs(self.part_dir(table, partition), exist_ok=True)
        try:
            with fs.open(tmp, "wb") as fh:
                writer = PartWriter(fh, schema)
                try:
                    with space_guard(self.location(target)):
                        yield writer
                        writer.close()
                        self._sync(fh)
                except BaseException:
                    writer.abandon()
                    raise
            fs.mv(tmp, target)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)

    def write_receipt(self, table: str, partition: str, part: str, receipt: dict) -> None:
        """Written after a part's files: its presence with a matching fingerprint means the part is done."""
        folder = f"{self.part_dir(table, partition)}/{RECEIPTS}"
        self._write_bytes(f"{folder}/{part}.json", folder, json.dumps(receipt, sort_keys=True).encode())

    def receipt(self, table: str, partition: str, part: str) -> dict | None:
        path = f"{self.part_dir(table, partition)}/{RECEIPTS}/{part}.json"
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read())

    def commit(self, table: str, partition: str, parts: list[str], info: dict | None = None) -> None:
        """Make a folder partition's parts visible as one version: the manifest is written last; parts
        and receipts it does not list (a deleted shard's, a legacy single file) and the temporary files
        of killed runs are removed after it."""
        folder = self.part_dir(table, partition)
        body = {"parts": sorted(parts), **(info or {})}
        self._write_bytes(f"{folder}/{PARTS_MANIFEST}", folder, json.dumps(body, sort_keys=True).encode())
        keep = {self.part_path(table, partition, p) for p in parts}
        for path in self.fs.glob(f"{folder}/*.parquet"):
            if path not in keep:
                self.fs.rm(path)
        for path in self.fs.glob(f"{folder}/{RECEIPTS}/*.json"):
            if path.rsplit("/", 1)[-1][: -len(".json")] not in body["parts"]:
                self.fs.rm(path)
        for path in self.fs.glob(f"{folder}/*.tmp-*"):
            self.fs.rm(path)
        legacy = self.path(table, partition)
        if self.fs.exists(legacy):
            self.fs.rm(legacy)

    def committed(self, table: str, partition: str) -> dict | None:
        """A folder partition's manifest (its `parts` and what the stage recorded), or None."""
        path = f"{self.part_dir(table, partition)}/{PARTS_MANIFEST}"
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read())

    def files(self, table: str, partition: str | None = None) -> list[str]:
        """The Parquet files that hold a partition (or, without one, the whole table)."""
        if partition is None and not self.fs.exists(self.path(table)):
            return [f for p in self.partitions(table) for f in self.files(table, p)]
        manifest = self.committed(table, partition) if partition is not None else None
        if manifest is not None:
            return [self.part_path(table, partition, p) for p in manifest["parts"]]
        path = self.path(table, partition)
        return [path] if self.fs.exists(path) else []

    def delete(self, table: str, partition: str | None = None) -> bool:
        """Remove one stored partition (e.g. of a topic that vanished); True if there was one."""
        path = self.path(table, partition)
        if self.fs.exists(path):
            self.fs.rm(path)
            return True
        return False

    def exists(self, table: str, partition: str | None = None) -> bool:
        if partition is None:
            return self.fs.exists(self.path(table)) or bool(self.partitions(table))
        return self.fs.exists(self.path(table, partition)) or self.committed(table, partition) is not None

    def read(self, table: str, partition: str | None = None, columns: list[str] | None = None,
             filters: list[tuple] | None = None) -> pl.DataFrame:
        """`filters` (pyarrow's `[(column, op, value)]`) skip row groups by their statistics: a slice of a big
        table read without loading the rest."""
        files = self.files(table, partition)
        if not files:
            if self.committed(table, partition or UNPARTITIONED) is not None:
                return pl.DataFrame()  # a committed partition with no parts (every shard deleted)
            raise FileNotFoundError(
                f"table {table!r} partition {partition or UNPARTITIONED!r} has not been materialized ({self.url(table, partition)})"
            )
        frames = []
        for path in files:
            with self.fs.open(path, "rb") as fh:
                frames.append(pl.read_parquet(fh, columns=columns) if filters is None
                              else pl.from_arrow(pq.read_table(fh, columns=columns, filters=filters)))
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")

    def num_rows(self, table: str, partition: str | None = None) -> int:
        total = 0
        for path in self.files(table, partition):
            with self.fs.open(path, "rb") as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
        return total

    def partitions(self, table: str) -> list[str]:
        base = self.table_dir(table)
        files = {p.rsplit("/", 1)[-1][: -len(".parquet")] for p in self.fs.glob(f"{base}/*.parquet")}
        folders = {p.rsplit("/", 2)[-2] for p in self.fs.glob(f"{base}/*/{PARTS_MANIFEST}")}
        return sorted(files | folders)

    def tables(self) -> list[str]:
        if not self.fs.exists(self._base):
            return []
        return sorted(
            p.rsplit("/", 1)[-1]
            for p in self.fs.ls(self._base, detail=False)
            if self.fs.isdir(p) and (self.fs.glob(f"{p}/*.parquet") or self.fs.glob(f"{p}/*/{PARTS_MANIFEST}"))
        )


class PartWriter:
    """Row groups of one part file, each written as it comes (memory: one batch)."""

    def __init__(self, fh, schema: dict) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(fh, _arrow_schema(schema), compression="zstd")
        self.rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height:
            table = frame.select(list(self._schema)).cast(self._schema).to_arrow()
            self._writer.write_table(table.cast(self._writer.schema))
            self.rows += frame.height

    def close(self) -> None:
        self._writer.close()

    def abandon(self) -> None:
        """Release the writer of a part that will not be kept (its temporary file is removed)."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the part is discarded; the error that stopped it is what matters
            pass


def _arrow_schema(schema: dict) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow().schema


def _encode(frame: pl.DataFrame) -> memoryview:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getbuffer()

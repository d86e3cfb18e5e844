"""Parquet tables under one root (a local path or any fsspec URL), written atomically.

Layout: `<root>/<table>/<partition>.parquet`, with `_all` for unpartitioned tables.
Companion tables share the asset's name: `clean_documents__removed`,
`raw_documents__quarantine`. A write goes to a temporary name beside its target
and is renamed into place, so a killed run leaves the previous file intact and
readers never see half a file.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass

import fsspec
import polars as pl
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from hare_assets.lib.diskspace import space_guard

UNPARTITIONED = "_all"
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
        """The path as a URL other tools (DuckDB, users) can open."""
        path = self.path(table, partition)
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def write(self, table: str, frame: pl.DataFrame, partition: str | None = None) -> str:
        """Write atomically: temporary file in the same folder, then rename over the target. The file is
        encoded first, so a full disk or a file-size limit fails with the exact bytes it needed."""
        fs, target = self.fs, self.path(table, partition)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True)
        data = buffer.getbuffer()
        try:
            with space_guard(self.url(table, partition), data.nbytes):
                fs.makedirs(self.table_dir(table), exist_ok=True)
                with fs.open(tmp, "wb") as fh:
                    fh.write(data)
                    if self.is_local:  # durable before it becomes visible
                        fh.flush()
                        os.fsync(fh.fileno())
                fs.mv(tmp, target)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)
        return target

    def delete(self, table: str, partition: str | None = None) -> bool:
        """Remove one stored partition (e.g. of a topic that vanished); True if there was one."""
        path = self.path(table, partition)
        if self.fs.exists(path):
            self.fs.rm(path)
            return True
        return False

    def exists(self, table: str, partition: str | None = None) -> bool:
        return self.fs.exists(self.path(table, partition))

    def read(self, table: str, partition: str | None = None, columns: list[str] | None = None) -> pl.DataFrame:
        path = self.path(table, partition)
        if not self.fs.exists(path):
            raise FileNotFoundError(
                f"table {table!r} partition {partition or UNPARTITIONED!r} has not been materialized ({self.url(table, partition)})"
            )
        with self.fs.open(path, "rb") as fh:
            return pl.read_parquet(fh, columns=columns)

    def num_rows(self, table: str, partition: str | None = None) -> int:
        with self.fs.open(self.path(table, partition), "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows

    def partitions(self, table: str) -> list[str]:
        pattern = f"{self.table_dir(table)}/*.parquet"
        return sorted(p.rsplit("/", 1)[-1][: -len(".parquet")] for p in self.fs.glob(pattern))

    def tables(self) -> list[str]:
        if not self.fs.exists(self._base):
            return []
        return sorted(
            p.rsplit("/", 1)[-1]
            for p in self.fs.ls(self._base, detail=False)
            if self.fs.isdir(p) and self.fs.glob(f"{p}/*.parquet")
        )

"""Read one source shard into documents and quarantined records.

A *record* is what a shard holds one of: a JSON line, a table row, a text file or
a separator-delimited segment of one. Every record becomes either a document
(`doc_id, source, shard, row, text, meta`) or a quarantine row with a reason,
so `records == len(docs) + len(quarantine)` always holds. Byte-order marks and
CRLF line ends are normalised, not quarantined.

`iter_shard` streams a shard in batches of about `batch_records` records (JSON lines,
delimited rows and separated text line by line, Parquet by record batch), so memory is
bounded by a batch, not by the shard; `read_shard` collects every batch.
"""

from __future__ import annotations

import csv
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

import fsspec
import xxhash
from fsspec.core import url_to_fs

from hare_assets.lib.profile import SourceConfig

SNIPPET_CHARS = 500
BATCH_RECORDS = 1000
_LONE_SURROGATE = re.compile("[\udc80-\udcff]")

# Reasons a record is quarantined (the `reason` column users query).
INVALID_JSON = "invalid_json"
INVALID_UTF8 = "invalid_utf8"
WRONG_SCHEMA = "wrong_schema"
MISSING_TEXT = "missing_text"
NON_STRING_TEXT = "non_string_text"
EMPTY_TEXT = "empty_text"
TOO_LARGE = "too_large"
TRUNCATED = "truncated_or_corrupt_stream"
UNREADABLE = "unreadable_shard"

_FORMAT_SUFFIXES = {
    "jsonl": (".jsonl", ".json", ".ndjson"),
    "jsonl.gz": (".jsonl.gz", ".json.gz", ".ndjson.gz"),
    "jsonl.zst": (".jsonl.zst", ".json.zst", ".ndjson.zst", ".jsonl.zstd"),
    "parquet": (".parquet",),
    "txt": (".txt",),
    "tsv": (".tsv",),
    "csv": (".csv",),
}


def doc_id(text: str) -> str:
    """Stable content hash: identical texts share an id until deduplication keeps one of them."""
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))


def normalise_text(text: str) -> tuple[str, list[str]]:
    """Strip a byte-order mark and turn CRLF/CR into LF; report what was changed."""
    fixes = []
    if text.startswith("\ufeff"):
        text = text[1:]
        fixes.append("bom")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        fixes.append("crlf")
    return text, fixes


@dataclass
class ShardResult:
    source: str
    shard: str
    docs: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    normalised: dict[str, int] = field(default_factory=dict)
    seen: int = 0  # records of the shard before this batch

    @property
    def records(self) -> int:
        return len(self.docs) + len(self.quarantine)

    def take(self) -> ShardResult:
        """This batch; the next one starts empty and numbers on."""
        batch = ShardResult(self.source, self.shard, self.docs, self.quarantine, self.normalised, self.seen)
        self.seen += self.records
        self.docs, self.quarantine, self.normalised = [], [], {}
        return batch

    def merge(self, batch: ShardResult) -> None:
        self.docs += batch.docs
        self.quarantine += batch.quarantine
        for fix, n in batch.normalised.items():
            self.normalised[fix] = self.normalised.get(fix, 0) + n

    def reject(self, row: int, reason: str, detail: str, raw: str | bytes = "") -> None:
        if isinstance(raw, bytes):
            raw = raw[:SNIPPET_CHARS].decode("utf-8", "backslashreplace")
        self.quarantine.append(
            {"source": self.source, "shard": self.shard, "row": row, "reason": reason, "detail": detail, "raw": raw[:SNIPPET_CHARS]}
        )

    def accept(self, row: int, value: Any, meta: dict[str, Any], max_bytes: int, raw: str | bytes = "") -> None:
        """Validate a text value and keep it as a document, or quarantine it with the reason."""
        if value is None:
            return self.reject(row, MISSING_TEXT, "the text field is missing or null", raw)
        if not isinstance(value, str):
            return self.reject(row, NON_STRING_TEXT, f"text is {type(value).__name__}, not a string", raw)
        if _LONE_SURROGATE.search(value):
            return self.reject(row, INVALID_UTF8, "bytes that are not valid UTF-8", raw or value)
        text, fixes = normalise_text(value)
        for fix in fixes:
            self.normalised[fix] = self.normalised.get(fix, 0) + 1
        if not text.strip():
            return self.reject(row, EMPTY_TEXT, "text is empty or only whitespace", raw)
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            return self.reject(row, TOO_LARGE, f"{size} bytes exceeds ingest.max_doc_bytes={max_bytes}", text)
        self.docs.append(
            {
                "doc_id": doc_id(text),
                "source": self.source,
                "shard": self.shard,
                "row": row,
                "text": text,
                "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str) if meta else "{}",
            }
        )


def list_shards(src: SourceConfig) -> list[str]:
    """Shard names of a source: files under its path (sorted), or one name for a HF dataset split."""
    if src.format == "hf":
        assert src.hf is not None
        return [f"{src.hf.id}:{src.hf.config or 'default'}:{src.hf.split}"]
    fs, root = url_to_fs(src.path)
    if any(ch in root for ch in "*?["):
        paths = fs.glob(root)
        base = root.split("*")[0].rsplit("/", 1)[0]
    elif fs.isdir(root):
        paths = fs.find(root)
        base = root.rstrip("/")
    elif fs.exists(root):
        return [root.rsplit("/", 1)[-1]]
    else:
        raise FileNotFoundError(f"source {src.name!r}: path {src.path} does not exist")
    suffixes = _FORMAT_SUFFIXES[src.format]
    names = (p[len(base) + 1 :] for p in paths if p.lower().endswith(suffixes) and not fs.isdir(p))
    return sorted(n for n in names if not any(fnmatch(n, pat) or fnmatch(n.rsplit("/", 1)[-1], pat) for pat in src.exclude))


def shard_path(src: SourceConfig, shard: str) -> str:
    fs, root = url_to_fs(src.path)
    if fs.isdir(root):
        return fs.unstrip_protocol(f"{root.rstrip('/')}/{shard}")
    if any(ch in root for ch in "*?["):
        base = root.split("*")[0].rsplit("/", 1)[0]
        return fs.unstrip_protocol(f"{base}/{shard}")
    return src.path


def read_shard(src: SourceConfig, shard: str, max_doc_bytes: int) -> ShardResult:
    """Every record of one shard at once (small inputs); the assets stream with `iter_shard`."""
    result = ShardResult(src.name, shard)
    for batch in iter_shard(src, shard, max_doc_bytes):
        result.merge(batch)
    return result


def iter_shard(src: SourceConfig, shard: str, max_doc_bytes: int, batch_records: int = BATCH_RECORDS) -> Iterator[ShardResult]:
    """A shard's records in batches; never raises for bad content, only for an unknown format. An
    unreadable shard (permission, vanished file, network) ends in one quarantine row, after any
    batches already read."""
    result = ShardResult(src.name, shard)
    readers = {"parquet": _read_parquet, "tsv": _read_delimited, "csv": _read_delimited, "txt": _read_txt, "hf": _read_hf}
    reader = _read_jsonl if src.format.startswith("jsonl") else readers[src.format]
    path = "" if src.format == "hf" else shard_path(src, shard)
    try:
        for _ in reader(src, path, result, max_doc_bytes, batch_records):
            yield result.take()
    except OSError as exc:  # the shard is quarantined, not the partition
        result.reject(result.seen + result.records, UNREADABLE, f"{type(exc).__name__}: {exc}")
    if result.records or result.normalised:
        yield result.take()


class TruncatedStream(Exception):
    """A compressed shard ended before its end-of-stream marker, or holds corrupt data."""


def _decompressor(fmt: str):
    if fmt == "jsonl.gz":
        return zlib.decompressobj(wbits=31)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


def _chunks(path: str, fmt: str, size: int = 1 << 20) -> Iterator[bytes]:
    """Decompressed bytes of a shard; everything recoverable is yielded before a TruncatedStream."""
    with fsspec.open(path, "rb") as raw:
        if fmt == "jsonl":
            while block := raw.read(size):
                yield block
            return
        decomp, fed = _decompressor(fmt), False
        while block := raw.read(size):
            fed = True
            while block:
                if decomp.eof:  # concatenated gzip members / zstd frames
                    decomp = _decompressor(fmt)
                try:
                    yield decomp.decompress(block)
                except Exception as exc:  # zlib.error, zstandard.ZstdError
                    raise TruncatedStream(f"corrupt compressed data: {exc}") from exc
                block = decomp.unused_data if decomp.eof else b""
        if fed and not decomp.eof:
            raise TruncatedStream("compressed stream ended before its end-of-stream marker")


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Split a byte stream on b'\\n'; errors from the stream surface from here to the caller."""
    pending = b""
    for block in chunks:
        pending += block
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def _read_jsonl(src: SourceConfig, path: str, result: ShardResult, max_bytes: int, batch: int) -> Iterator[None]:
    row = 0
    try:
        for line in _lines(_chunks(path, src.format)):
            if row == 0 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
                result.normalised["bom"] = result.normalised.get("bom", 0) + 1
            if not line.strip():
                continue  # blank lines hold no record
            _parse_json_line(src, line, row, result, max_bytes)
            row += 1
            if result.records >= batch:
                yield
    except TruncatedStream as exc:
        result.reject(row, TRUNCATED, f"after {row} records: {exc}; the partial last line (if any) is counted here")


def _parse_json_line(src: SourceConfig, line: bytes, row: int, result: ShardResult, max_bytes: int) -> None:
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return result.reject(row, INVALID_UTF8, str(exc), line)
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return result.reject(row, INVALID_JSON, str(exc), decoded)
    if not isinstance(obj, dict):
        return result.reject(row, WRONG_SCHEMA, f"expected a JSON object, got {type(obj).__name__}", decoded)
    if src.text_field is not None and src.text_field not in obj:
        return result.reject(row, MISSING_TEXT, f"no {src.text_field!r} field; fields: {sorted(obj)[:10]}", decoded)
    value, meta = _take_text(src, obj)
    result.accept(row, value, meta, max_bytes, decoded)


def _take_text(src: SourceConfig, record: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A record's text and the rest of it; with `text_field: null` (open task data in any layout) the whole record
    as JSON text, for the task's renderer to read."""
    if src.text_field is None:
        return json.dumps(record, ensure_ascii=False, default=str), {}
    return record.pop(src.text_field), record


def _read_parquet(src: SourceConfig, path: str, result: ShardResult, max_bytes: int, batch: int) -> Iterator[None]:
    import pyarrow.parquet as pq

    with fsspec.open(path, "rb") as fh:
        try:
            parquet = pq.ParquetFile(fh)
            columns = parquet.schema_arrow.names
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends for corrupt files
            result.reject(0, UNREADABLE, f"{type(exc).__name__}: {exc}")
            return
        if src.text_field is not None and src.text_field not in columns:
            result.reject(0, WRONG_SCHEMA, f"no column {src.text_field!r}; columns: {columns}")
            return
        row = 0
        try:
            for records in parquet.iter_batches(batch_size=batch):
                for rec in records.to_pylist():
                    value, meta = _take_text(src, rec)
                    result.accept(row, value, meta, max_bytes, json.dumps(meta, default=str)[:SNIPPET_CHARS] if value is None else "")
                    row += 1
                yield
        except Exception as exc:  # a corrupt row group after good ones: what was read stays
            if isinstance(exc, OSError):
                raise
            result.reject(row, UNREADABLE, f"after {row} rows: {type(exc).__name__}: {exc}")


def _decode_lenient(data: bytes) -> str:
    """Decode keeping invalid bytes as lone surrogates so each bad record, not the file, is quarantined."""
    return data.decode("utf-8", "surrogateescape")


def _text_lines(path: str, result: ShardResult) -> Iterator[str]:
    """A text file's lines, decoded leniently, BOM and CR removed (counted once per file), each ending in LF."""
    crlf = False
    for i, line in enumerate(_lines(_chunks(path, "jsonl"))):
        if i == 0 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
            result.normalised["bom"] = result.normalised.get("bom", 0) + 1
        if b"\r" in line:
            line = line.replace(b"\r", b"")
            if not crlf:
                crlf = True
                result.normalised["crlf"] = result.normalised.get("crlf", 0) + 1
        yield _decode_lenient(line) + "\n"


def _read_delimited(src: SourceConfig, path: str, result: ShardResult, max_bytes: int, batch: int) -> Iterator[None]:
    lines = _text_lines(path, result)
    if src.format == "tsv":
        reader: Iterator[list[str]] = csv.reader((line.rstrip("\n") for line in lines), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(lines)
    if src.has_header:
        header = next(reader, None)
        if header is None:
            return
    else:
        header = src.columns or ["text"]
    if src.text_field is not None and src.text_field not in header:
        result.reject(0, WRONG_SCHEMA, f"no column {src.text_field!r}; columns: {header}")
        return
    row = 0
    for fields in reader:
        if not fields or fields == [""]:
            continue
        raw = "\t".join(fields)
        if len(fields) != len(header):
            result.reject(row, WRONG_SCHEMA, f"{len(fields)} columns, expected {len(header)} ({header})", raw)
        else:
            value, meta = _take_text(src, dict(zip(header, fields)))
            result.accept(row, value, meta, max_bytes, raw)
        row += 1
        if result.records >= batch:
            yield


def _read_txt(src: SourceConfig, path: str, result: ShardResult, max_bytes: int, batch: int) -> Iterator[None]:
    """No separator: the file is one document. With one: a line that matches starts the next document."""
    if src.separator is None:
        with fsspec.open(path, "rb") as fh:
            result.accept(0, _decode_lenient(fh.read()), {}, max_bytes)
        return
    starts = re.compile(src.separator)
    row, offset, begin, segment = 0, 0, 0, []

    def emit() -> None:
        nonlocal row
        text = "".join(segment)
        if text.strip():
            result.accept(row, text.strip("\n"), {"offset": begin}, max_bytes)
            row += 1

    for line in _text_lines(path, result):
        if starts.match(line.rstrip("\n")):
            emit()
            begin, segment = offset, ([line] if src.keep_separator else [])
        else:
            segment.append(line)
        offset += len(line)
        if result.records >= batch:
            yield
    emit()


def _read_hf(src: SourceConfig, path: str, result: ShardResult, max_bytes: int, batch: int) -> Iterator[None]:
    """A HF dataset split, from the hub or a local builder (`id: json` plus `data_files`)."""
    import datasets

    assert src.hf is not None
    cfg = src.hf
    try:
        dataset = datasets.load_dataset(
            cfg.id,
            cfg.config,
            split=cfg.split,
            streaming=cfg.streaming,
            revision=cfg.revision,
            data_files=cfg.data_files,
        )
    except Exception as exc:  # hub errors, missing configs: say what to fix
        raise RuntimeError(
            f"source {src.name!r}: could not load HF dataset {cfg.id!r} (config={cfg.config}, split={cfg.split}): {exc}. "
            "Offline? Set HF_DATASETS_OFFLINE=1 with a populated cache, or point the source at local files."
        ) from exc
    for row, rec in enumerate(dataset):
        if cfg.max_rows is not None and row >= cfg.max_rows:
            break
        rec = dict(rec)
        if src.text_field is not None and src.text_field not in rec:
            result.reject(row, MISSING_TEXT, f"no {src.text_field!r} field; fields: {sorted(rec)[:10]}")
            continue
        value, meta = _take_text(src, rec)
        result.accept(row, value, meta, max_bytes)
        if result.records >= batch:
            yield

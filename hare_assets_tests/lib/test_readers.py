"""Every bad-input kind is counted and quarantined with its reason; none crashes the shard."""

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
import zstandard

from hare_assets.lib import readers
from hare_assets.lib.profile import SourceConfig
from hare_assets.lib.readers import doc_id, list_shards, read_shard


def _source(path: Path, fmt: str, **kw) -> SourceConfig:
    return SourceConfig(name="s", format=fmt, path=str(path), **kw)


GOOD = json.dumps({"text": "A good document about gardens.", "lang": "en"}).encode()


def test_jsonl_bad_records_are_quarantined_with_reasons(tmp_path):
    lines = [
        b"\xef\xbb\xbf" + GOOD,  # BOM on the first line: normalised
        b'{"text": "unterminated',  # invalid JSON
        b'{"text": "caf\xff\xfe"}',  # invalid UTF-8
        b'{"title": "no text here"}',  # missing text
        b'{"text": ""}',  # empty
        b'{"text": "   \\n  "}',  # whitespace only
        b'{"text": 12345}',  # not a string
        b'{"text": null}',  # null
        b'["an", "array"]',  # wrong schema
        b"",  # blank line: not a record
        json.dumps({"text": "x" * 200}).encode(),  # too large for the cap below
        json.dumps({"text": "Windows\r\nline ends\r\n"}).encode(),  # CRLF: normalised
    ]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = read_shard(_source(tmp_path, "jsonl"), "a.jsonl", max_doc_bytes=100)
    reasons = [q["reason"] for q in result.quarantine]
    assert reasons == [
        readers.INVALID_JSON, readers.INVALID_UTF8, readers.MISSING_TEXT, readers.EMPTY_TEXT, readers.EMPTY_TEXT,
        readers.NON_STRING_TEXT, readers.MISSING_TEXT, readers.WRONG_SCHEMA, readers.TOO_LARGE,
    ]
    assert [d["row"] for d in result.docs] == [0, 10]
    assert result.docs[0]["text"] == "A good document about gardens."
    assert json.loads(result.docs[0]["meta"]) == {"lang": "en"}
    assert result.docs[1]["text"] == "Windows\nline ends\n"
    assert result.normalised == {"bom": 1, "crlf": 1}
    assert result.records == 11  # the blank line holds no record
    assert all(q["detail"] for q in result.quarantine)


@pytest.mark.parametrize("fmt", ["jsonl.gz", "jsonl.zst"])
def test_truncated_compressed_shard_keeps_what_was_readable(tmp_path, fmt):
    payload = b"\n".join(json.dumps({"text": f"document number {i} " * 40}).encode() for i in range(400)) + b"\n"
    if fmt == "jsonl.gz":
        blob = gzip.compress(payload)
    else:
        blob = zstandard.ZstdCompressor().compress(payload)
    name = f"cut.{fmt}"
    (tmp_path / name).write_bytes(blob[: len(blob) * 6 // 10])
    result = read_shard(_source(tmp_path, fmt), name, max_doc_bytes=10**6)
    assert 0 < len(result.docs) < 400
    assert result.quarantine[-1]["reason"] == readers.TRUNCATED
    assert result.quarantine[-1]["row"] >= len(result.docs)


def test_tsv_and_csv(tmp_path):
    (tmp_path / "n.tsv").write_bytes(
        "text\tlabel\r\nFirst wire story.\tWorld\r\nonly one column\r\nbad \xff byte\tWorld\r\n".encode("latin-1")
    )
    result = read_shard(_source(tmp_path, "tsv"), "n.tsv", 10**6)
    assert [d["text"] for d in result.docs] == ["First wire story."]
    assert json.loads(result.docs[0]["meta"]) == {"label": "World"}
    assert [q["reason"] for q in result.quarantine] == [readers.WRONG_SCHEMA, readers.INVALID_UTF8]

    (tmp_path / "c.csv").write_text('body,id\n"multi\nline, quoted",1\n', encoding="utf-8")
    result = read_shard(_source(tmp_path, "csv", text_field="body"), "c.csv", 10**6)
    assert result.docs[0]["text"] == "multi\nline, quoted"

    result = read_shard(_source(tmp_path, "csv", text_field="missing"), "c.csv", 10**6)
    assert result.quarantine[0]["reason"] == readers.WRONG_SCHEMA and not result.docs


def test_tsv_without_header(tmp_path):
    (tmp_path / "n.tsv").write_text("Story one.\tWorld\nStory two.\tSports\n", encoding="utf-8")
    result = read_shard(_source(tmp_path, "tsv", has_header=False, columns=["text", "label"]), "n.tsv", 10**6)
    assert [d["row"] for d in result.docs] == [0, 1]


def test_parquet_rows_and_schema(tmp_path):
    pl.DataFrame({"text": ["one doc", None, ""], "n": [1, 2, 3]}).write_parquet(tmp_path / "p.parquet")
    result = read_shard(_source(tmp_path, "parquet"), "p.parquet", 10**6)
    assert [d["text"] for d in result.docs] == ["one doc"]
    assert [q["reason"] for q in result.quarantine] == [readers.MISSING_TEXT, readers.EMPTY_TEXT]
    pl.DataFrame({"content": ["x"]}).write_parquet(tmp_path / "wrong.parquet")
    assert read_shard(_source(tmp_path, "parquet"), "wrong.parquet", 10**6).quarantine[0]["reason"] == readers.WRONG_SCHEMA
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    assert read_shard(_source(tmp_path, "parquet"), "junk.parquet", 10**6).quarantine[0]["reason"] == readers.UNREADABLE


def test_txt_whole_file_and_separator(tmp_path):
    (tmp_path / "book.txt").write_bytes(b"\xef\xbb\xbfChapter 1\r\nIt begins.\r\n")
    result = read_shard(_source(tmp_path, "txt"), "book.txt", 10**6)
    assert result.docs[0]["text"] == "Chapter 1\nIt begins.\n"
    assert result.normalised == {"bom": 1, "crlf": 1}

    (tmp_path / "wiki.txt").write_text(" \n = First = \n body one \n = = Sub = = \n more \n = Second = \n body two \n", encoding="utf-8")
    src = _source(tmp_path / "wiki.txt", "txt", separator=r"^ = [^=].* = *$")
    result = read_shard(src, "wiki.txt", 10**6)
    assert [d["text"].split("\n")[0] for d in result.docs] == [" = First = ", " = Second = "]
    assert "= = Sub = =" in result.docs[0]["text"]

    (tmp_path / "bad.txt").write_bytes(b"broken \xff\xfe bytes")
    assert read_shard(_source(tmp_path, "txt"), "bad.txt", 10**6).quarantine[0]["reason"] == readers.INVALID_UTF8


def test_list_shards_filters_formats_and_excludes(tmp_path):
    for name in ["b.jsonl", "a.jsonl", "SOURCE.txt", "sub/c.jsonl", "notes.md"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    assert list_shards(_source(tmp_path, "jsonl")) == ["a.jsonl", "b.jsonl", "sub/c.jsonl"]
    assert list_shards(_source(tmp_path, "txt", exclude=["SOURCE.txt"])) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_shards(_source(tmp_path / "nope", "jsonl"))


def test_hf_source_through_datasets_builder(tmp_path, monkeypatch):
    """The hf path, offline: a packaged builder over local files goes through the same loader as a hub id."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "d.jsonl").write_text('{"text": "hello from datasets"}\n{"body": "no text"}\n', encoding="utf-8")
    src = SourceConfig(name="hub", format="hf", hf={"id": "json", "data_files": str(tmp_path / "d.jsonl"), "streaming": False})
    [shard] = list_shards(src)
    result = read_shard(src, shard, 10**6)
    assert [d["text"] for d in result.docs] == ["hello from datasets"]
    assert result.quarantine[0]["reason"] == readers.MISSING_TEXT


def test_doc_id_is_a_stable_content_hash():
    assert doc_id("same text") == doc_id("same text") != doc_id("other text")
    assert len(doc_id("x")) == 32

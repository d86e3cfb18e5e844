"""The `hare` command line on real files and a real materialized home."""

import json

import polars as pl

from hare_assets.cli import main
from hare_assets.lib.storage import TableStore


def test_dedup_json_on_real_agnews(real_data, capsys):
    news = real_data / "corpora/news/agnews_test.tsv"
    assert main(["dedup", str(news), "--columns", "text,label", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 7600
    assert report["duplicates_removed"] == len(report["clusters"]) >= 15
    assert report["exact_duplicates"] >= 5
    pair = report["clusters"][0]
    assert set(pair) >= {"kept", "removed", "similarity"}
    assert pair["kept"]["file"] == str(news) and isinstance(pair["removed"]["row"], int)


def test_dedup_directory_and_text_output(tmp_path, capsys):
    text = " ".join(f"The river rose after {i} days of rain and the bridge was closed to traffic." for i in range(12))
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": text}) + "\n" + json.dumps({"text": "Something else entirely here."}) + "\n")
    pl.DataFrame({"text": [text.replace("rain and", "snow and", 1)]}).write_parquet(tmp_path / "b.parquet")
    assert main(["dedup", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 documents in 2 files; 1 duplicates (0 exact, 1 near)" in out
    assert "b.parquet#0 -> kept" in out


def test_sql_queries_the_catalog(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARE_HOME", str(tmp_path))
    TableStore(str(tmp_path)).write("clean_documents__removed", pl.DataFrame({"reason": ["incomplete", "incomplete", "non_english"]}), "s")
    assert main(["sql", "SELECT reason, count(*) AS n FROM clean_documents__removed GROUP BY 1 ORDER BY 1", "--format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"reason": "incomplete", "n": 2}, {"reason": "non_english", "n": 1}]
    assert main(["sql"]) == 0
    assert capsys.readouterr().out.split() == ["clean_documents__removed"]


def test_bad_profile_is_a_message_not_a_traceback(capsys):
    assert main(["demo", "--profile", "no-such-profile"]) == 2
    assert "profile 'no-such-profile' not found" in capsys.readouterr().err


def test_dedup_unknown_file_is_a_message(tmp_path, capsys):
    (tmp_path / "x.xml").write_text("<a/>")
    assert main(["dedup", str(tmp_path / "x.xml")]) == 2
    assert "unknown format" in capsys.readouterr().err

"""The `hare` command line on real files and a real materialized home."""

import json
import random
import subprocess
import sys

import polars as pl
import pytest

from hare_assets.cli import main
from hare_assets.lib.paths import DEMO_DIR
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


_DEDUP_PEAK_RSS = """
import resource, sys
from hare_assets.cli import main
assert main(["dedup", sys.argv[1], "--json"]) == 0
open(sys.argv[2], "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


@pytest.mark.slow
def test_dedup_of_ten_times_more_files_needs_no_more_memory(tmp_path):
    """`hare dedup` streams files in batches and decides out of core: 30 MB needs what 3 MB needs."""
    words = sorted({w for line in (DEMO_DIR / "corpus/encyclopedia/part-000.jsonl").open() for w in json.loads(line)["text"].split()})
    rng = random.Random(7)
    peaks = {}
    for name, files in (("small", 2), ("large", 20)):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(files):  # 1,000 distinct documents of 200 words (1.5 MB) and 50 exact copies among them
            docs = [" ".join(rng.choices(words, k=200)) for _ in range(1000)]
            (folder / f"part-{i:02d}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs + docs[::20]))
        proc = subprocess.run([sys.executable, "-c", _DEDUP_PEAK_RSS, str(folder), str(tmp_path / f"{name}.rss")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout)
        assert (report["documents"], report["exact_duplicates"], report["near_duplicates"]) == (1050 * files, 50 * files, 0)
        peaks[name] = int((tmp_path / f"{name}.rss").read_text()) * 1024
    print(f"\nhare dedup peak RSS: 3 MB {peaks['small'] >> 20} MiB, 30 MB {peaks['large'] >> 20} MiB")
    assert peaks["large"] <= 1.2 * peaks["small"], peaks


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


def test_baseline_names_the_profiles_baselines(capsys):
    assert main(["baseline", "tinyllama", "--profile", "demo"]) == 2
    assert "profile 'demo' has no baseline 'tinyllama' (evaluation.baselines: ['smollm2-135m-instruct'])" in capsys.readouterr().err

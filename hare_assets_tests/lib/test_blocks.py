"""Per-shard stages: a shard that cannot be read is retried, then quarantined; receipts make reruns skip."""

import json

import polars as pl

from functools import partial

from hare_assets.lib import blocks
from hare_assets.lib.blocks import PartJob, ingest_part, run_block
from hare_assets.lib.profile import SourceConfig
from hare_assets.lib.storage import TableStore


def test_an_unreadable_shard_is_retried_then_quarantined_and_the_block_goes_on(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.jsonl").write_text(json.dumps({"text": "The harbour was calm all week."}) + "\n")
    src = SourceConfig(name="web", format="jsonl", path=str(tmp_path / "data"))
    tables = TableStore(str(tmp_path / "home"))
    jobs = [PartJob("gone", "gone.jsonl", "web", 10, "f1"), PartJob("ok", "ok.jsonl", "web", 10, "f2")]
    calls = []

    def work(job: PartJob) -> dict:
        calls.append(job.shard)
        return ingest_part(tables, "raw", "web-00000", src, 1000, 100, job)

    run = run_block(tables, "raw", "web-00000", jobs, work, workers=1, log=lambda _: None)
    assert run.receipts["gone"]["quarantined"] == 1 and run.receipts["ok"]["rows_out"] == 1
    [row] = pl.read_parquet(tables.part_path("raw__quarantine", "web-00000", "gone")).to_dicts()
    assert row["reason"] == "unreadable_shard" and "FileNotFoundError" in row["detail"]

    again = run_block(tables, "raw", "web-00000", jobs, work, workers=1, log=lambda _: None)
    assert again.read == [] and again.skipped == ["gone.jsonl", "ok.jsonl"] and calls == ["gone.jsonl", "ok.jsonl"]
    changed = [jobs[0], PartJob("ok", "ok.jsonl", "web", 10, "f2-changed")]  # a new fingerprint: that shard again
    assert run_block(tables, "raw", "web-00000", changed, work, workers=1, log=lambda _: None).read == ["ok.jsonl"]


def test_a_pool_of_workers_writes_what_one_process_writes(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    for i in range(4):
        (tmp_path / "data" / f"s{i}.jsonl").write_text("".join(json.dumps({"text": f"Shard {i} line {j}."}) + "\n" for j in range(300)))
    src = SourceConfig(name="web", format="jsonl", path=str(tmp_path / "data"))
    jobs = [PartJob(f"s{i}", f"s{i}.jsonl", "web", 10, f"f{i}") for i in range(4)]
    monkeypatch.setattr(blocks, "POOL_MIN_BYTES", 0)
    parts = {}
    for workers in (1, 2):
        tables = TableStore(str(tmp_path / f"home-{workers}"))
        run = run_block(tables, "raw", "web-00000", jobs, partial(ingest_part, tables, "raw", "web-00000", src, 1000, 100),
                        workers=workers, log=lambda _: None)
        assert sorted(run.read) == [f"s{i}.jsonl" for i in range(4)]
        parts[workers] = {p.name: p.read_bytes() for p in (tmp_path / f"home-{workers}" / "raw" / "web-00000").glob("*.parquet")}
    assert len(parts[1]) == 4 and parts[1] == parts[2]

"""Per-shard stages: a shard that cannot be read is retried, then quarantined; receipts make reruns skip."""

import json

import polars as pl

from hare_assets.lib.blocks import PartJob, ingest_part, run_block
from hare_assets.lib.profile import SourceConfig
from hare_assets.lib.shard_pools import LocalPool
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

    run = run_block(tables, "raw", "web-00000", jobs, work, LocalPool(1), log=lambda _: None)
    assert run.receipts["gone"]["quarantined"] == 1 and run.receipts["ok"]["rows_out"] == 1
    [row] = pl.read_parquet(tables.part_path("raw__quarantine", "web-00000", "gone")).to_dicts()
    assert row["reason"] == "unreadable_shard" and "FileNotFoundError" in row["detail"]

    again = run_block(tables, "raw", "web-00000", jobs, work, LocalPool(1), log=lambda _: None)
    assert again.read == [] and again.skipped == ["gone.jsonl", "ok.jsonl"] and calls == ["gone.jsonl", "ok.jsonl"]
    changed = [jobs[0], PartJob("ok", "ok.jsonl", "web", 10, "f2-changed")]  # a new fingerprint: that shard again
    assert run_block(tables, "raw", "web-00000", changed, work, LocalPool(1), log=lambda _: None).read == ["ok.jsonl"]

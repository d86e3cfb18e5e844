"""Every pool writes what one process writes: a forkserver pool of this machine and a local Ray cluster."""

import json
import os
from functools import partial

import pytest

from hare_assets.lib import shard_pools
from hare_assets.lib.blocks import PartJob, ingest_part, run_block
from hare_assets.lib.profile import EngineConfig, SourceConfig
from hare_assets.lib.shard_pools import LocalPool, RayPool
from hare_assets.lib.storage import TableStore


def _shards(tmp_path):
    (tmp_path / "data").mkdir()
    for i in range(4):
        (tmp_path / "data" / f"s{i}.jsonl").write_text("".join(json.dumps({"text": f"Shard {i} line {j}."}) + "\n" for j in range(300)))
    return SourceConfig(name="web", format="jsonl", path=str(tmp_path / "data")), [
        PartJob(f"s{i}", f"s{i}.jsonl", "web", 10, f"f{i}") for i in range(4)]


def _with_pid(work, job: PartJob) -> dict:
    return {**work(job), "pid": os.getpid()}


def _written(tmp_path, name, pool, src, jobs) -> tuple[dict[str, bytes], set[int]]:
    """The part files the pool wrote, and the processes the shards ran in."""
    tables = TableStore(str(tmp_path / name))
    ingest = partial(ingest_part, tables, "raw", "web-00000", src, 1000, 100)
    run = run_block(tables, "raw", "web-00000", jobs, partial(_with_pid, ingest), pool, log=lambda _: None)
    assert sorted(run.read) == [f"s{i}.jsonl" for i in range(4)]
    assert [r["rows_out"] for r in run.receipts.values()] == [300] * 4
    parts = {p.name: p.read_bytes() for p in (tmp_path / name / "raw" / "web-00000").glob("*.parquet")}
    return parts, {r["pid"] for r in run.receipts.values()}


def test_a_pool_of_workers_writes_what_one_process_writes(tmp_path, monkeypatch):
    src, jobs = _shards(tmp_path)
    monkeypatch.setattr(shard_pools, "POOL_MIN_BYTES", 0)
    one, here = _written(tmp_path, "one", LocalPool(1), src, jobs)
    two, workers = _written(tmp_path, "two", LocalPool(2), src, jobs)
    assert len(one) == 4 and two == one
    assert here == {os.getpid()} and len(workers) == 2 and os.getpid() not in workers


def test_ray_tasks_write_what_one_process_writes(tmp_path, ray_cluster):
    src, jobs = _shards(tmp_path)
    one, _ = _written(tmp_path, "one", LocalPool(1), src, jobs)
    on_ray, workers = _written(tmp_path, "ray", RayPool(EngineConfig(kind="ray")), src, jobs)
    assert on_ray == one and workers and os.getpid() not in workers


def test_a_failed_shard_on_ray_fails_the_block_with_its_error(tmp_path, ray_cluster):
    src, jobs = _shards(tmp_path)
    (tmp_path / "data" / "s2.jsonl").write_text("")
    tables = TableStore(str(tmp_path / "home"))

    def boom(job):
        if job.shard == "s2.jsonl":
            raise ValueError(f"cannot use {job.shard}")
        return ingest_part(tables, "raw", "web-00000", src, 1000, 100, job)

    with pytest.raises(ValueError, match="cannot use s2.jsonl"):
        list(RayPool(EngineConfig(kind="ray")).map(boom, jobs))


def test_call_runs_where_the_pool_runs(ray_cluster):
    assert LocalPool(2).call(os.getpid) == os.getpid()
    assert RayPool(EngineConfig(kind="ray")).call(os.getpid, cpus=8) != os.getpid()  # 8 CPUs capped at the cluster's 2

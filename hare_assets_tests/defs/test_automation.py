"""The shard sensor, the weekly schedule and declarative automation on a real graph and instance."""

import datetime as dt
import shutil

import dagster as dg
import pytest
import yaml

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.paths import DEMO_DIR
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore


@pytest.fixture
def watched(tmp_path, monkeypatch):
    """A profile over copies of two demo sources, so new shards can be dropped into their folders."""
    for name in ("encyclopedia", "news"):
        shutil.copytree(DEMO_DIR / "corpus" / name, tmp_path / "corpus" / name)
    demo = yaml.safe_load((load_profile("demo").model_dump_json()))
    profile = {
        "name": "watched",
        "sources": [
            {"name": "encyclopedia", "format": "jsonl", "path": str(tmp_path / "corpus/encyclopedia")},
            {"name": "news", "format": "tsv", "path": str(tmp_path / "corpus/news"), "quality": {"min_words": 20}},
        ],
        "ingest": {"block_bytes": 65536},  # encyclopedia's two 113 KB shards: a block each
        "integrity": {"benchmarks": ["demo_mc"]},
        "tasks": {"restruct": ["qa"]},
        "model": demo["model"],
    }
    path = tmp_path / "watched.yaml"
    path.write_text(yaml.safe_dump(profile))
    monkeypatch.setenv("HARE_CACHE", str(tmp_path / "cache"))
    return load_profile(path), tmp_path


def _tick(sensor, instance, defs) -> dg.SensorResult | dg.SkipReason:
    """What the sensor returns (the daemon applies the partition requests before it resolves the runs)."""
    return sensor(dg.build_sensor_context(instance=instance, definitions=defs, resources=dict(defs.resources)))


def test_a_new_shard_requests_exactly_its_block_and_leaves_the_others_untouched(watched):
    profile, root = watched
    home = root / "home"
    defs = build_definitions(profile, home=str(home))
    sensor = defs.resolve_sensor_def("new_shards_sensor")
    job = defs.resolve_job_def("curate_block")
    assert sensor.job_name == "curate_block"
    with dg.instance_for_test() as instance:
        assert "no shard_manifest yet" in _tick(sensor, instance, defs).skip_message  # a first ingestion is a person's call
        assert defs.resolve_job_def("scan_shards").execute_in_process(instance=instance).success
        blocks = sorted(instance.get_dynamic_partitions("blocks"))
        assert blocks == ["encyclopedia-00000", "encyclopedia-00001", "news-00000"]
        for block in blocks:
            assert job.execute_in_process(partition_key=block, instance=instance).success
        assert _tick(sensor, instance, defs).skip_message.startswith("no new or changed shards")
        store = TableStore(str(home))
        before = {p: p.read_bytes() for p in sorted(home.glob("*/encyclopedia-0000[01]/*.parquet"))}
        assert len(before) >= 6

        # a shard in a subfolder, with a space and non-ASCII letters in its name
        new = root / "corpus/encyclopedia/new batch/Gezeiten für alle.jsonl"
        new.parent.mkdir()
        new.write_text('{"id": "x1", "title": "Tides", "text": "The tides rise and fall twice a day because the Moon pulls '
                       'on the oceans, and the Sun adds its own smaller pull to it."}\n')
        tick, again = _tick(sensor, instance, defs), _tick(sensor, instance, defs)
        [request] = tick.run_requests
        assert request.partition_key == "encyclopedia-00002"
        assert [r.run_key for r in again.run_requests] == [request.run_key]  # stable: the daemon runs it once
        assert list(tick.dynamic_partitions_requests[0].partition_keys) == ["encyclopedia-00002"]
        instance.add_dynamic_partitions("blocks", ["encyclopedia-00002"])

        result = job.execute_in_process(partition_key="encyclopedia-00002", instance=instance)
        assert result.success
        assert store.read("raw_documents", "encyclopedia-00002")["shard"].to_list() == ["new batch/Gezeiten für alle.jsonl"]
        [part] = [p.name for p in (home / "raw_documents" / "encyclopedia-00002").glob("*.parquet")]
        assert part.isascii() and " " not in part and part.startswith("new_batch_Gezeiten_fur_alle.jsonl-")
        assert {p: p.read_bytes() for p in sorted(home.glob("*/encyclopedia-0000[01]/*.parquet"))} == before
        assert isinstance(_tick(sensor, instance, defs), dg.SkipReason)


def test_weekly_schedule_requests_every_block(watched):
    profile, root = watched
    defs = build_definitions(profile, home=str(root / "home"))
    schedule = defs.resolve_schedule_def("weekly_rebuild")
    assert schedule.cron_schedule == "0 3 * * 1"
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("scan_shards").execute_in_process(instance=instance).success
        context = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def(), scheduled_execution_time=dt.datetime(2026, 12, 7, 3, tzinfo=dt.timezone.utc))
        requests = schedule.evaluate_tick(context).run_requests
    assert sorted(r.partition_key for r in requests) == ["encyclopedia-00000", "encyclopedia-00001", "news-00000"]


def test_data_stages_follow_their_inputs_and_gpu_stages_wait(watched):
    profile, root = watched
    defs = build_definitions(profile, home=str(root / "home"))
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("scan_shards").execute_in_process(instance=instance).success
        baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        for block in ("encyclopedia-00000", "encyclopedia-00001", "news-00000"):
            assert defs.resolve_job_def("curate_block").execute_in_process(partition_key=block, instance=instance).success
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
        requested = {key.to_user_string() for key in (r.key for r in result.results) if result.get_num_requested(key)}
        assert "duplicate_decisions" in requested
        assert not requested & {"checkpoint", "benchmark_scores", "leakage_report", "synthetic_documents", "task_documents"}

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
        "integrity": {"benchmarks": ["demo_mc"]},
        "tasks": {"restruct": ["qa"]},
        "model": demo["model"],
    }
    path = tmp_path / "watched.yaml"
    path.write_text(yaml.safe_dump(profile))
    monkeypatch.setenv("HARE_CACHE", str(tmp_path / "cache"))
    return load_profile(path), tmp_path


def test_a_new_shard_requests_its_source(watched):
    profile, root = watched
    defs = build_definitions(profile, home=str(root / "home"))
    sensor = defs.resolve_sensor_def("new_shards_sensor")
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert not first.run_requests and "baseline" in first.skip_message
        quiet = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
        assert not quiet.run_requests and quiet.skip_message == "no new shards"

        new = root / "corpus/encyclopedia/part-002.jsonl"
        new.write_text('{"id": "x1", "title": "Tides", "text": "The tides rise and fall twice a day because the Moon pulls on the oceans."}\n')
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=quiet.cursor, definitions=defs))
        [request] = tick.run_requests
        assert request.partition_key == "encyclopedia" and request.tags["hare/new_shards"] == "part-002.jsonl"
        assert sensor.job_name == "curate_sources"

        # the run the sensor asks for ingests the new shard
        result = defs.resolve_job_def("curate_sources").execute_in_process(partition_key="encyclopedia", instance=instance)
        assert result.success
        assert "part-002.jsonl" in set(TableStore(str(root / "home")).read("raw_documents", "encyclopedia")["shard"])
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs))
        assert not again.run_requests


def test_weekly_schedule_requests_every_source(watched):
    profile, root = watched
    defs = build_definitions(profile, home=str(root / "home"))
    schedule = defs.resolve_schedule_def("weekly_rebuild")
    assert schedule.cron_schedule == "0 3 * * 1"
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def(), scheduled_execution_time=dt.datetime(2026, 12, 7, 3, tzinfo=dt.timezone.utc))
        requests = schedule.evaluate_tick(context).run_requests
    assert sorted(r.partition_key for r in requests) == ["encyclopedia", "news"]


def test_data_stages_follow_their_inputs_and_gpu_stages_wait(watched):
    profile, root = watched
    defs = build_definitions(profile, home=str(root / "home"))
    with dg.instance_for_test() as instance:
        baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        for source in ("encyclopedia", "news"):
            assert defs.resolve_job_def("curate_sources").execute_in_process(partition_key=source, instance=instance).success
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
        requested = {key.to_user_string() for key in (r.key for r in result.results) if result.get_num_requested(key)}
        assert "deduplicated_documents" in requested
        assert not requested & {"checkpoint", "benchmark_scores", "leakage_report", "synthetic_documents", "task_documents"}

"""Runs whose process died are ended and their pool slots freed; a waiting step is told who holds the slot.

Real processes execute a job whose one step takes the `gpu` pool (a slot held for as long as the
process lives), in an instance on disk shared with the test, then are killed with SIGKILL.
"""

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from hare_assets.defs.runs import PoolWatch, active_runs, end_dead_runs, run_health_sensor, slot_waits
from hare_assets.lib.paths import PROJECT_ROOT

_HOLDER = """
import time, dagster as dg
from hare_assets.defs.runs import owner_tags

@dg.op(pool="gpu")
def hold_gpu():
    print("holding", flush=True)
    time.sleep(600)

@dg.job
def gpu_job():
    hold_gpu()

gpu_job.execute_in_process(instance=dg.DagsterInstance.get(), tags=owner_tags())
"""


@pytest.fixture
def instance(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {tmp_path / 'storage'}\ntelemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as inst:
        inst.event_log_storage.set_concurrency_slots("gpu", 1)
        yield inst


def _start(tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _HOLDER], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "DAGSTER_HOME": str(tmp_path)})


def _wait_holding(proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()
    assert line.strip() == "holding" and time.monotonic() < deadline, line


def test_a_killed_run_is_ended_and_its_slot_freed(instance, tmp_path):
    proc = _start(tmp_path)
    _wait_holding(proc)
    [found] = active_runs(instance)
    assert found.alive is True and found.process.pid == proc.pid
    assert end_dead_runs(instance) == []  # alive: left alone
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [found] = active_runs(instance)
    assert found.alive is False and found.run.status == dg.DagsterRunStatus.STARTED
    assert [s.run_id for s in instance.event_log_storage.get_concurrency_info("gpu").claimed_slots] == [found.run.run_id]
    [line] = end_dead_runs(instance)
    assert f"{found.run.run_id[:8]} (gpu_job) started but its process (pid {proc.pid}) is gone: marked failed, 1 pool slot(s) freed" == line
    assert instance.get_run_by_id(found.run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
    assert active_runs(instance) == []


def test_a_waiting_step_is_told_who_holds_the_slot_and_the_sensor_frees_it(instance, tmp_path):
    holder = _start(tmp_path)
    _wait_holding(holder)
    waiter = _start(tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not slot_waits(instance):
            assert time.monotonic() < deadline, "the second run never waited for the slot"
            time.sleep(0.5)
        [held_by] = [f.run for f in active_runs(instance) if f.process.pid == holder.pid]
        [(waiting_run, step, message)] = slot_waits(instance)
        assert step == "hold_gpu" and waiting_run != held_by.run_id
        assert "waits for pool 'gpu' (1 slot(s))" in message
        assert f"held by run {held_by.run_id[:8]} (gpu_job) step hold_gpu since " in message
        said: list[str] = []
        with PoolWatch(instance, waiting_run, said.append, every=0.5, first_after=0.1):  # what hare demo prints
            deadline = time.monotonic() + 30
            while len(said) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert len(said) >= 2 and all(f"held by run {held_by.run_id[:8]}" in line for line in said), said
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        context = dg.build_sensor_context(instance=instance)
        result = run_health_sensor(context)
        assert "1 dead run(s) ended" in str(result.skip_message)
        logged = [e.dagster_event.message for e in instance.all_logs(waiting_run)
                  if e.dagster_event and f"held by run {held_by.run_id[:8]}" in (e.dagster_event.message or "")]
        assert logged, "the waiting run's event log (what the UI shows) says what it waits for"
        _wait_holding(waiter)  # the slot freed by the sensor went to the waiting step
    finally:
        for proc in (holder, waiter):
            proc.kill()
            proc.wait()

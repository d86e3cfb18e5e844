"""Runs that outlive their process, and steps that wait for a pool: found, said, and ended.

A run whose process was killed (kill -9, an out-of-memory kill, a lost machine) stays `STARTED` in
the instance and keeps its concurrency slots, so every later step of the same pool waits for it
forever. Dagster's run monitoring cannot see that for runs of the default run launcher or for
`execute_in_process`, so the owner of each run is recorded (`hare/*` tags, or the run worker's
"Started process" event) and checked here: by `hare demo`/`hare ui` before they start work, by
`hare runs`, and by `run_health_sensor` under the daemon.
"""

from __future__ import annotations

import datetime
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from dagster._core.events import DagsterEventType, EngineEventData
from dagster._core.storage.dagster_run import FINISHED_STATUSES, DagsterRun, RunsFilter

from hare_assets.lib.processes import ProcessRef, started_at

HOST_TAG, PID_TAG, STARTED_TAG = "hare/host", "hare/pid", "hare/pid_started"
ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
WAIT_MESSAGE_EVERY_S = 60.0


def owner_tags(ref: ProcessRef | None = None) -> dict[str, str]:
    """Tags naming the process that executes a run (for runs executed in this process)."""
    ref = ref or ProcessRef.current()
    return {HOST_TAG: ref.host, PID_TAG: str(ref.pid), STARTED_TAG: f"{ref.started:.3f}"}


@dataclass(frozen=True)
class RunOwner:
    run: DagsterRun
    process: ProcessRef | None  # None: not known (a pod, a run that never started a process)
    alive: bool | None  # None: cannot be checked from here

    @property
    def label(self) -> str:
        return describe(self.run)


def describe(run: DagsterRun) -> str:
    partition = run.tags.get("dagster/partition")
    return f"{run.run_id[:8]} ({run.job_name}{f'[{partition}]' if partition else ''})"


def owner(instance: dg.DagsterInstance, run: DagsterRun) -> RunOwner:
    """Who executes `run`: its hare tags, else the pid in the run worker's "Started process" event."""
    tags = run.tags
    if PID_TAG in tags:
        ref = ProcessRef(tags.get(HOST_TAG, ""), int(tags[PID_TAG]), float(tags.get(STARTED_TAG, "0")))
        return RunOwner(run, ref, ref.alive())
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.event_specific_data if record.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
        if pid is not None and record.step_key is None:  # the run worker, not a step subprocess
            if not _local_launcher(instance):
                return RunOwner(run, None, None)
            ref = ProcessRef(socket.gethostname(), int(pid.value), record.timestamp)  # the default launcher runs here
            return RunOwner(run, ref, started_at(ref.pid, before=record.timestamp + 1.0))
    return RunOwner(run, None, None)


def _local_launcher(instance: dg.DagsterInstance) -> bool:
    return type(instance.run_launcher).__name__ == "DefaultRunLauncher"


def active_runs(instance: dg.DagsterInstance) -> list[RunOwner]:
    return [owner(instance, run) for run in instance.get_runs(RunsFilter(statuses=ACTIVE))]


def end_run(instance: dg.DagsterInstance, run: DagsterRun, reason: str, canceled: bool) -> int:
    """Mark a run canceled (or failed) from outside it and free its concurrency slots; returns slots freed."""
    current = instance.get_run_by_id(run.run_id)
    if current is not None and current.status not in FINISHED_STATUSES:
        if canceled:
            instance.report_run_canceled(current, message=reason)
        else:
            instance.report_run_failed(current, message=reason)
    return free_slots(instance, run.run_id)


def free_slots(instance: dg.DagsterInstance, run_id: str) -> int:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0
    held = sum(1 for key in storage.get_concurrency_keys()
               for slot in storage.get_concurrency_info(key).claimed_slots if slot.run_id == run_id)
    storage.free_concurrency_slots_for_run(run_id)
    return held


def end_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """End every active run whose process is gone, and free slots still held by finished runs.
    Returns one line per run ended."""
    lines = []
    for found in active_runs(instance):
        if found.alive is not False:
            continue
        canceled = found.run.status == dg.DagsterRunStatus.CANCELING
        pid = found.process.pid if found.process else "?"
        slots = end_run(instance, found.run, f"its process (pid {pid}) is gone: marked "
                        f"{'canceled' if canceled else 'failed'} by hare, slots freed", canceled)
        lines.append(f"{found.label} {found.run.status.value.lower()} but its process (pid {pid}) is gone: "
                     f"marked {'canceled' if canceled else 'failed'}, {slots} pool slot(s) freed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = {slot.run_id for key in storage.get_concurrency_keys() for slot in storage.get_concurrency_info(key).claimed_slots}
        for run_id in sorted(holders):
            run = instance.get_run_by_id(run_id)
            if run is None or run.status in FINISHED_STATUSES:
                freed = free_slots(instance, run_id)
                lines.append(f"{describe(run) if run else run_id[:8]} has ended but held {freed} pool slot(s): freed")
    return lines


def slot_waits(instance: dg.DagsterInstance, run_id: str | None = None) -> list[tuple[str, str, str]]:
    """(waiting run id, step key, message) for each step waiting for a pool slot: which runs hold the
    pool's slots and since when."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    out = []
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        assigned = {(p.run_id, p.step_key): p.assigned_timestamp for p in info.pending_steps if p.assigned_timestamp}
        holders = []
        for slot in info.claimed_slots:
            run = instance.get_run_by_id(slot.run_id)
            since = assigned.get((slot.run_id, slot.step_key))
            holders.append(f"run {describe(run) if run else slot.run_id[:8]} step {slot.step_key}"
                           + (f" since {_clock(since)}" if since else ""))
        for waiting in info.pending_steps:
            if waiting.assigned_timestamp or (run_id and waiting.run_id != run_id):
                continue
            held = "; ".join(holders) or "no run (the pool's limit is 0: `dagster instance concurrency set`)"
            out.append((waiting.run_id, waiting.step_key,
                        f"step {waiting.step_key} waits for pool {key!r} ({info.slot_count} slot(s)) since "
                        f"{_clock(waiting.enqueued_timestamp)}: held by {held}. `hare runs` shows them; "
                        "`hare runs --end RUN_ID` ends one"))
    return out


def _clock(moment: datetime.datetime) -> str:
    waited = datetime.datetime.now(datetime.timezone.utc) - moment.astimezone(datetime.timezone.utc)
    return f"{moment.astimezone().strftime('%H:%M:%S')} ({int(waited.total_seconds() // 60)} min ago)"


def report_waits(instance: dg.DagsterInstance, run_id: str | None = None, echo: Callable[[str], None] | None = None) -> int:
    """Write each waiting step's message into its run's event log (the UI shows it) and to `echo`."""
    waits = slot_waits(instance, run_id)
    for waiting_run, step_key, message in waits:
        run = instance.get_run_by_id(waiting_run)
        if run is not None:
            instance.report_engine_event(message, run, EngineEventData(), step_key=step_key)
        if echo is not None:
            echo(message)
    return len(waits)


class PoolWatch:
    """While a run executes in this process, say once a minute what its waiting steps wait for, and end
    dead runs that hold the slots (so the wait ends by itself)."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, echo: Callable[[str], None],
                 every: float = WAIT_MESSAGE_EVERY_S, first_after: float = 10.0):
        self.instance, self.run_id, self.echo, self.every, self.first_after = instance, run_id, echo, every, first_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hare-pool-watch", daemon=True)

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        wait = self.first_after
        while not self._stop.wait(wait):
            wait = self.every
            try:
                report_waits(self.instance, self.run_id, self.echo)
                for line in end_dead_runs(self.instance):
                    self.echo(line)
            except Exception as exc:  # the watch must never take the run down with it
                self.echo(f"(pool watch: {exc})")


@dg.sensor(minimum_interval_seconds=int(WAIT_MESSAGE_EVERY_S), default_status=dg.DefaultSensorStatus.RUNNING,
           description="Once a minute: ends runs whose process is gone (marked failed, pool slots freed) and writes "
                       "into each run that waits for a pool slot which run holds it and since when.")
def run_health_sensor(context: dg.SensorEvaluationContext):
    waiting = report_waits(context.instance)  # first: a wait on a dead run's slot is said before the slot is freed
    ended = end_dead_runs(context.instance)
    for line in ended:
        context.log.warning(line)
    return dg.SkipReason(f"{len(ended)} dead run(s) ended, {waiting} step(s) waiting for a pool slot")

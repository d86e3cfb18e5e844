"""Fault injection on the real demo graph: `hare demo` (a real process) is stopped inside each kind of
step by one signal (SIGKILL, SIGTERM or SIGINT, see `SIGNALS`; all three in training) and run again
each time, up to the end.

A failpoint (`HARE_FAILPOINT`) holds the run at a known place inside the step; the signal is real and
goes to the `hare demo` process as a user's kill or Ctrl-C would. After each stop: every process of
the run is gone within 10 s; a SIGTERM/SIGINT run is canceled with its slots freed; a SIGKILL run is
ended by the next `hare demo`, which says so. At the end the tables equal those of the uninterrupted
run in `demo_run`, training resumed from its last save, and no run or pool slot is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import psutil
import pytest

from hare_assets.defs.runs import ACTIVE
from hare_assets.lib.paths import PROJECT_ROOT
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore

pytestmark = pytest.mark.slow

# One point inside each kind of step, in the order a demo run reaches them.
KINDS = ["ingest", "clean", "dedup", "decontaminate_d1", "embeddings", "synthesis", "training", "evaluation"]
STOP_WITHIN_S = 10.0
REACH_TIMEOUT_S = 420

class Demo:
    """A demo home (data, cache, Dagster instance) and `hare demo` runs into it. Its generation cache starts as a
    copy of `replies_from`'s: the language model's replies are those the reference run got, so the tables can
    be compared exactly (sampling on a CPU repeats only with the same batches and threads), and the runs
    spend their time on stopping and resuming, not on generating again."""

    def __init__(self, root: Path, replies_from: Path):
        self.root = root
        shutil.copy(PROJECT_ROOT / "dagster.yaml", root / "dagster.yaml")
        (root / "cache").mkdir()
        with sqlite3.connect(replies_from / "generation.sqlite") as src, sqlite3.connect(root / "cache" / "generation.sqlite") as dst:
            src.backup(dst)
        self.env = {**os.environ, "HARE_HOME": str(root / "data"), "DAGSTER_HOME": str(root), "HARE_CACHE": str(root / "cache"),
                    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.logs: list[str] = []
        self._instance: dg.DagsterInstance | None = None

    def start(self, failpoint: str | None) -> tuple[subprocess.Popen, Path, Path]:
        """A `hare demo` process; each run gets its own failpoint folder, so the same failpoint can stop it again."""
        name = f"run-{len(self.logs):02d}-{failpoint or 'end'}"
        markers = self.root / "failpoints" / name
        markers.mkdir(parents=True)
        env = {**self.env, "HARE_FAILPOINT": failpoint or "", "HARE_FAILPOINT_DIR": str(markers)}
        log = self.root / f"{name}.log"
        with open(log, "w") as fh:  # its own session: our signals reach only the hare process
            proc = subprocess.Popen([sys.executable, "-m", "hare_assets.cli", "demo", "--profile", "demo"], cwd=self.root, env=env,
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        return proc, log, markers / (failpoint or "")

    def stop_at(self, failpoint: str, signum: int) -> str:
        proc, log, marker = self.start(failpoint)
        try:
            deadline = time.monotonic() + REACH_TIMEOUT_S
            while not marker.exists():
                assert proc.poll() is None, f"hare demo ended (rc {proc.returncode}) before {failpoint}:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"{failpoint} not reached in {REACH_TIMEOUT_S}s"
                time.sleep(0.2)
            members = _tree(proc.pid)
            assert len(members) >= 2, "the supervisor and its worker"
            sent = time.monotonic()
            os.kill(proc.pid, signum)
            code = proc.wait(timeout=STOP_WITHIN_S + 5)
            _, alive = psutil.wait_procs(members, timeout=max(0.1, STOP_WITHIN_S - (time.monotonic() - sent)))
            name = signal.Signals(signum).name
            assert not alive, f"{name} at {failpoint}: still running after {STOP_WITHIN_S}s: {[p.pid for p in alive]}"
            assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum), code
        finally:
            for member in _tree(proc.pid) if proc.poll() is None else []:
                member.kill()
        text = log.read_text()
        self.logs.append(text)
        return text

    def run_to_end(self) -> str:
        proc, log, _ = self.start(None)
        assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
        self.logs.append(log.read_text())
        return self.logs[-1]

    def instance_state(self) -> dict:
        """Active runs, claimed pool slots and every run's status (newest first) in the demo's instance."""
        if self._instance is None:
            here = os.getcwd()
            os.chdir(self.root)  # dagster.yaml's storage paths are relative
            try:
                self._instance = dg.DagsterInstance.from_config(str(self.root))
            finally:
                os.chdir(here)
        instance, storage = self._instance, self._instance.event_log_storage
        return {
            "active": [r.run_id for r in instance.get_runs(dg.RunsFilter(statuses=ACTIVE))],
            "claimed": [[s.run_id, s.step_key] for key in storage.get_concurrency_keys()
                        for s in storage.get_concurrency_info(key).claimed_slots],
            "statuses": {r.run_id: r.status.value for r in instance.get_runs()},
        }


def _tree(pid: int) -> list[psutil.Process]:
    """The hare process, its worker and every job below them (taken before the signal)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _accounting(store: TableStore) -> dict:
    return {source: (store.num_rows("raw_documents", source), store.num_rows("clean_documents", source),
                     store.num_rows("clean_documents__removed", source), store.num_rows("clean_documents__quarantine", source))
            for source in store.partitions("raw_documents")}


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns)


def _assert_same_tables(done: TableStore, reference: TableStore) -> None:
    for table in ("deduplicated_documents", "decontaminated_documents"):
        assert done.read(table)["doc_id"].sort().equals(reference.read(table)["doc_id"].sort()), table
    assert done.read("deduplicated_documents__removed")["doc_id"].sort().equals(
        reference.read("deduplicated_documents__removed")["doc_id"].sort())
    assert _accounting(done) == _accounting(reference)
    assert done.partitions("synthetic_documents") == reference.partitions("synthetic_documents")
    for topic in reference.partitions("decontaminated_synthetic"):
        assert done.read("decontaminated_synthetic", topic)["doc_id"].sort().equals(
            reference.read("decontaminated_synthetic", topic)["doc_id"].sort()), topic
    for stage in ("stage1", "stage2"):
        assert _sorted(done.read("training_mixture__manifest", stage)).equals(_sorted(reference.read("training_mixture__manifest", stage)))
        assert done.read("training_mixture", stage)["doc_id"].equals(reference.read("training_mixture", stage)["doc_id"])


# One signal per kind of step, each signal at several kinds (SIGKILL where work runs in other processes: pool
# workers, the forkserver, the launched evaluation); all three in training, whose reruns get a little further
# each time (it saves every `save_every` steps: three saves in the demo). One stop per kind keeps the suite
# inside its time budget; every stop is a whole `hare demo` process.
SIGNALS = {
    "ingest": [signal.SIGKILL], "clean": [signal.SIGTERM], "dedup": [signal.SIGINT], "decontaminate_d1": [signal.SIGKILL],
    "embeddings": [signal.SIGTERM], "synthesis": [signal.SIGINT], "training": [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
    "evaluation": [signal.SIGKILL],
}


def test_demo_resumes_after_every_signal_inside_every_kind_of_step(demo_run, tmp_path):
    """Signals at the same point of each kind of step (`SIGNALS`), then a run to the end."""
    reference, reference_root = demo_run
    demo = Demo(tmp_path, replies_from=reference_root / "cache")
    assert list(SIGNALS) == KINDS
    killed = False  # was the previous stop a kill -9?
    for kind in KINDS:
        signals = SIGNALS[kind]
        for signum in signals:
            log = demo.stop_at(kind, signum)
            state = demo.instance_state()
            newest = next(iter(state["statuses"].values()))
            if signum == signal.SIGKILL:  # nothing could clean up: the next hare command must
                assert len(state["active"]) == 1 and newest == "STARTED", f"after kill -9 in {kind}: {state}"
            else:
                assert state["active"] == [] and state["claimed"] == [], f"{signal.Signals(signum).name} in {kind}: {state}"
                assert newest == "CANCELED" and "interrupted (Ctrl-C or SIGTERM)" in log, log[-2000:]
            if killed:  # the run after a kill -9 ended the run it left behind
                assert "is gone: marked failed" in log, f"the run killed before {kind} was not ended:\n{log[:1500]}"
            killed = signum == signal.SIGKILL
    final = demo.run_to_end()
    assert "is gone: marked failed" in final
    training = sum(len(SIGNALS[k]) for k in KINDS[: KINDS.index("training")])
    stage1 = load_profile("demo").training.stage1
    saves = list(range(stage1.save_every, stage1.max_steps + 1, stage1.save_every))
    assert len(saves) == len(SIGNALS["training"]), saves  # one stop after each save of stage1
    after = demo.logs[training + 1 : training + 4]  # the runs after the stops at those saves
    for log, step in zip(after, saves, strict=True):
        assert f"at step {step} (data position" in log, log[:3000]
    assert "1 pool slot(s) freed" in after[2], "the run killed in training held the gpu slot; the next run freed it"
    assert "done before by this plan, skipped" in final
    state = demo.instance_state()
    assert state["active"] == [] and state["claimed"] == [], state
    _assert_same_tables(TableStore(str(tmp_path / "data")), reference)

"""Real processes: a child dies with its parent, `supervise` stops a child that ignores Ctrl-C, pids are not trusted alone."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from hare_assets.lib.processes import ProcessRef, stop_tree, supervise

# A parent that starts a child which asked to die with it, prints the child's pid, then waits forever.
_PARENT = """
import subprocess, sys, time
from hare_assets.lib.processes import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(600)
"""

# Ignores SIGINT (as a step blocked outside user code does) and starts a grandchild.
_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"])
print(grandchild.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


# How the parent got SIGTERM from its own launcher: both states are inherited by the child across exec.
_INHERITED = {
    "default": "",
    "blocked": "import signal; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])\n",
    "ignored": "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n",
}


@pytest.mark.parametrize("sigterm", sorted(_INHERITED))
def test_child_dies_when_its_parent_is_killed(sigterm):
    parent = subprocess.Popen([sys.executable, "-c", _INHERITED[sigterm] + _PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert psutil.pid_exists(child)
    parent.kill()
    parent.wait()
    assert _gone(child), "the child outlived its parent's kill -9"


def test_stop_tree_kills_what_ignores_the_polite_signal():
    proc = subprocess.Popen([sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE, text=True)
    grandchild = int(proc.stdout.readline())
    started = time.monotonic()
    killed = stop_tree(proc.pid, first=signal.SIGINT, grace=1.0)
    assert killed == 2 and time.monotonic() - started < 5
    proc.wait()
    assert _gone(grandchild)


def test_supervise_stops_a_child_that_ignores_sigint_within_the_grace(tmp_path):
    marker = tmp_path / "pid"
    script = _STUBBORN.replace('print(grandchild.pid, flush=True)', f'open({str(marker)!r}, "w").write(str(grandchild.pid))')
    parent_code = f"""
import sys
from hare_assets.lib.processes import supervise
sys.exit(supervise([sys.executable, "-c", {script!r}], on_signal=lambda s, pid: print("on_signal", s, flush=True), grace=2.0))
"""
    proc = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    grandchild = int(marker.read_text())
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 128 + signal.SIGTERM
    assert f"on_signal {int(signal.SIGTERM)}" in out
    assert "SIGTERM: stopping" in err
    assert _gone(grandchild), "the grandchild of the supervised process survived"


def test_supervise_returns_the_child_exit_code():
    assert supervise([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3


def test_process_ref_does_not_trust_a_reused_pid():
    me = ProcessRef.current()
    assert me.alive() is True
    assert ProcessRef(me.host, me.pid, me.started - 3600).alive() is False  # same pid, an older process: not us
    assert ProcessRef("another-host", me.pid, me.started).alive() is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert ProcessRef(me.host, child.pid, time.time()).alive() is False
    assert os.getpid() == me.pid

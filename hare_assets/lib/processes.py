"""Processes that end when they should: children that die with their parent, a supervisor that turns
SIGINT/SIGTERM into a graceful stop and then a hard one, and process identities that survive pid reuse.

Linux kills a child whose parent died only if the child asked for it (`prctl(PR_SET_PDEATHSIG)`);
without that, a training job outlives a `kill -9` of the run that launched it and keeps writing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import psutil

PR_SET_PDEATHSIG = 1
GRACE_S = 5.0  # a graceful stop gets this long before the whole process tree is killed


@dataclass(frozen=True)
class ProcessRef:
    """A process as (host, pid, start time): a pid alone may belong to another process by now."""

    host: str
    pid: int
    started: float  # psutil create_time, seconds since the epoch

    @classmethod
    def current(cls) -> ProcessRef:
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool | None:
        """True/False on this host; None where it cannot be known (another host)."""
        if not self.local:
            return None
        return started_at(self.pid, before=self.started + 1.0)


def started_at(pid: int, before: float) -> bool:
    """Whether `pid` is a live process that was created before `before` (not a later process with a reused pid)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= before
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when its parent dies (Linux; None elsewhere).

    A blocked or ignored signal is inherited across fork and exec, and a launcher may have either (a run
    worker that masks SIGTERM while it shuts down, a shell's `trap '' TERM`): the child then never sees
    the death signal. So the child also unblocks `sig` and restores its default action."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (those that still exist)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def session(sid: int) -> list[psutil.Process]:
    """Every process of session `sid`, including those whose parent has died (re-parented to init)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                members.append(proc)
        except (ProcessLookupError, PermissionError):
            pass
    return members


def _unique(processes: list[psutil.Process]) -> list[psutil.Process]:
    seen, out = set(), []
    for proc in processes:
        if proc.pid not in seen:
            seen.add(proc.pid)
            out.append(proc)
    return out


def kill_tree(processes: list[psutil.Process], sig: int = signal.SIGKILL) -> None:
    for proc in processes:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def stop_tree(pid: int, first: int = signal.SIGTERM, grace: float = GRACE_S) -> int:
    """Send `first` to `pid`, wait up to `grace` seconds, then SIGKILL it and every descendant it had.
    Returns the number of processes that had to be killed."""
    return _stop(tree(pid), first, grace)  # the tree is taken before the signal: an orphaned grandchild is still found


def _stop(members: list[psutil.Process], first: int, grace: float) -> int:
    """`first` to the leader (members[0]), then SIGKILL for every member still alive after `grace`."""
    if not members:
        return 0
    kill_tree(members[:1], first)
    _, alive = psutil.wait_procs(members, timeout=grace)
    kill_tree(alive)
    psutil.wait_procs(alive, timeout=2)
    return len(alive)


def supervise(cmd: list[str], on_signal: Callable[[int, int], None] | None = None, forward: int = signal.SIGINT,
              grace: float = GRACE_S, die_with: int = signal.SIGKILL, **popen) -> int:
    """Run `cmd` in its own session and stop it on SIGINT or SIGTERM: `on_signal(signum, child_pid)` first
    (e.g. mark its runs canceling), then `forward` to the child, then after `grace` seconds SIGKILL for
    the child and all its descendants. Returns the child's exit code, or 128 + the signal when stopped.

    The child runs in a new session so that a terminal's Ctrl-C reaches only this process, which
    decides the order of the stop; it dies with this process if this one is killed outright.
    """
    child = subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_parent(die_with), **popen)
    received: list[int] = []

    def handler(signum, _frame) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while child.poll() is None and not received:
            try:
                child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        if received:
            signum = received[0]
            print(f"\n{signal.Signals(signum).name}: stopping (at most {grace + 2:.0f}s)...", file=sys.stderr, flush=True)
            members = _unique(tree(child.pid) + session(child.pid))
            if on_signal is not None:
                on_signal(signum, child.pid)
            _stop(members, forward, grace)
            child.wait()
            return 128 + signum
        return child.returncode
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if child.poll() is None:  # an exception here must not leave the child running
            kill_tree(tree(child.pid))

"""Where a block's shards are processed: in this machine's processes, or as tasks on a Ray cluster.

Both pools run the same picklable `work(job) -> receipt` and hand each receipt back to the caller as
its shard completes, so the receipts, the resume rule and the asset metadata are the same whichever
runs it. Workers write their part files themselves: on Ray the table store must be a location every
node reaches (a shared file system or an object store URL).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from hare_assets.lib.processes import die_with_parent
from hare_assets.lib.profile import EngineConfig

POOL_MIN_BYTES = 16 << 20  # below this a block runs in the step's own process: starting workers costs more
T = TypeVar("T")


class SizedJob(Protocol):
    bytes: int


class ShardPool(Protocol):
    remote: bool  # its work runs in other processes than the caller's, so it gets no unpicklable arguments

    def map(self, work: Callable[[Any], dict], jobs: list) -> Iterator[tuple[Any, dict]]:
        """(job, work(job)) for every job, in the order they finish."""

    def where(self, jobs: list) -> str:
        """Where `map` runs these jobs, for the asset's metadata."""

    def call(self, fn: Callable[..., T], *args, cpus: int = 1) -> T:
        """`fn(*args)` where the pool's work runs, with `cpus` cores reserved for it."""


class LocalPool:
    """`workers` processes of this machine, forked from a server that has the stages' modules and models
    loaded (so they start in milliseconds and share that memory); small blocks run in this process."""

    remote = False

    def __init__(self, workers: int, preload: tuple[str, ...] = ()):
        self.workers, self.preload = workers, preload

    def _size(self, jobs: list[SizedJob]) -> int:
        """Worker processes for these jobs; 0: the caller's process."""
        size = min(self.workers, len(jobs))
        return 0 if size <= 1 or sum(j.bytes for j in jobs) < POOL_MIN_BYTES else size

    def where(self, jobs: list[SizedJob]) -> str:
        size = self._size(jobs)
        return f"local: {size} worker processes" if size else "local: the step's process"

    def map(self, work: Callable[[SizedJob], dict], jobs: list[SizedJob]) -> Iterator[tuple[SizedJob, dict]]:
        size = self._size(jobs)
        if not size:
            for job in jobs:
                yield job, work(job)
            return
        # forkserver, not fork: the step has threads (Dagster's, polars', DuckDB's) that a fork would copy mid-lock
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(self.preload))
        with ProcessPoolExecutor(size, mp_context=context, initializer=_worker_start) as pool:
            futures = {pool.submit(work, job): job for job in jobs}
            try:
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield futures.pop(future), future.result()
            except BaseException:  # Ctrl-C, a failed shard, or the caller stopped: stop the shards in flight now
                for future in futures:
                    future.cancel()
                for process in list(pool._processes.values()):
                    process.kill()
                raise

    def call(self, fn: Callable[..., T], *args, cpus: int = 1) -> T:
        return fn(*args)


def _worker_start() -> None:
    """A pool worker ends with the process that started it (kill -9 of the step included)."""
    preexec = die_with_parent()
    if preexec:
        preexec()


class RayPool:
    """Tasks of one CPU each on a Ray cluster: the one at `engine.address`, else the one `RAY_ADDRESS` or
    `ray start` on this machine names, else a local cluster started here (Ray's own rule). The work
    function goes to the object store once; each task gets it by reference."""

    remote = True

    def __init__(self, engine: EngineConfig):
        self.engine = engine

    def _connect(self):
        import ray  # imported here: the local engine never needs it

        if not ray.is_initialized():
            options: dict[str, Any] = {"address": self.engine.address, "include_dashboard": False,
                                       "runtime_env": self.engine.runtime_env or None, "log_to_driver": False}
            if self.engine.address is None and not os.environ.get("RAY_ADDRESS"):
                options["num_cpus"] = self.engine.num_cpus  # only a cluster started here takes a size
            ray.init(**options)
        return ray

    def where(self, jobs: list) -> str:
        ray = self._connect()
        return f"ray: cluster at {ray.get_runtime_context().gcs_address}, {int(ray.cluster_resources().get('CPU', 0))} CPUs"

    def map(self, work: Callable[[Any], dict], jobs: list) -> Iterator[tuple[Any, dict]]:
        if not jobs:
            return
        ray = self._connect()
        task = ray.remote(num_cpus=1)(_apply)
        work_ref = ray.put(work)
        pending = {task.remote(work_ref, job): job for job in jobs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def call(self, fn: Callable[..., T], *args, cpus: int = 1) -> T:
        ray = self._connect()
        cpus = min(cpus, int(ray.cluster_resources().get("CPU", 1)))  # more than the cluster has would wait forever
        return ray.get(ray.remote(num_cpus=cpus)(_apply_args).remote(fn, *args))


def _apply(work: Callable[[Any], dict], job: Any) -> dict:
    return work(job)


def _apply_args(fn: Callable[..., T], *args) -> T:
    return fn(*args)


def shard_pool(engine: EngineConfig, workers: int, preload: tuple[str, ...] = ()) -> ShardPool:
    """The pool `engine` names; `workers` and `preload` size the local one."""
    return RayPool(engine) if engine.kind == "ray" else LocalPool(workers, preload)

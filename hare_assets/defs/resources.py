"""Resources every stage shares: table storage, where D1's shard work runs, the one generator used for all
synthesis, and the launcher that runs training and evaluation jobs through Dagster Pipes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.errors import DagsterExecutionInterruptedError, DagsterPipesExecutionError
from dagster._core.pipes.utils import open_pipes_session
from pydantic import Field

from hare_assets.lib.generation import GenerationCache, Generator, build_backend
from hare_assets.lib.paths import PROJECT_ROOT, artifacts_dir
from hare_assets.lib.processes import die_with_parent, stop_tree
from hare_assets.lib.profile import EngineConfig
from hare_assets.lib.shard_pools import ShardPool, shard_pool
from hare_assets.lib.storage import TableStore


class HareStorage(dg.ConfigurableResource):
    """Parquet tables for every asset under one root: a local path or an fsspec URL (s3://, gs://, …)."""

    root: str
    artifacts: str | None = Field(default=None, description="packed tokens and checkpoints (default: paths.artifacts_dir)")

    @property
    def tables(self) -> TableStore:
        return TableStore(self.root)

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.artifacts) if self.artifacts else artifacts_dir(self.root)


class ShardEngine(dg.ConfigurableResource):
    """Where the D1 block stages run their shards and the corpus-wide duplicate decision runs: `local`
    (processes of the step's machine) or `ray` (tasks on a Ray cluster). Set from the profile's `engine`
    section; the launchpad can override it for one run, e.g. a backfill on a cluster."""

    kind: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    runtime_env: dict | None = None

    def pool(self, workers: int, preload: tuple[str, ...] = ()) -> ShardPool:
        """`workers` and `preload` size a local pool; a Ray cluster schedules by its own CPUs."""
        return shard_pool(EngineConfig.model_validate(self.model_dump()), workers, preload)


class GeneratorResource(dg.ConfigurableResource):
    """The LLM behind D2/D3 and the benchmark paraphrases: `extractive` (a deterministic stand-in with no
    model), `openai` (any OpenAI-compatible server such as `vllm serve`), `transformers` (a local
    model directory, a hub id, a GGUF, or a packaged model such as `smollm2-135m-instruct`) or `vllm`
    (offline batches on a GPU). Replies are cached in SQLite by
    (backend, model, prompt, sampling), so an interrupted partition resumes without regenerating."""

    backend: str = "extractive"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, description="set from an environment variable with dg.EnvVar; never logged")
    device: str | None = None
    dtype: str = "auto"
    timeout: float = 120.0
    max_concurrency: int = 8
    max_retries: int = 4
    batch_size: int = 32
    cache_path: str

    @property
    def uses_gpu(self) -> bool:
        return self.backend == "vllm" or (self.backend == "transformers" and self.device != "cpu")

    def generator(self, log) -> Generator:
        settings = {"model": self.model}
        if self.backend == "openai":
            settings.update(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout)
        elif self.backend == "transformers":
            settings.update(device=self.device, dtype=self.dtype, log=log)
        backend = build_backend(self.backend, **settings)
        return Generator(
            backend,
            cache=GenerationCache(self.cache_path),
            max_concurrency=self.max_concurrency,
            max_retries=self.max_retries,
            batch_size=self.batch_size,
            log=log,
        )


class JobLauncher(dg.ConfigurableResource):
    """Runs GPU-heavy work (training, lm-eval, leakage scoring) outside the Dagster process through
    Dagster Pipes: the job module logs progress and reports its metadata back to the asset.

    `subprocess`: `python -m <module>` on this machine; a job run with `distributed=True`
    (training) and `processes` > 1 goes through `accelerate launch --multi_gpu` (DDP across local
    GPUs), or `torchrun --standalone` when its config says `device: cpu` (gloo). Evaluation and
    scoring jobs are one process. `k8s`: a pod from `image` with `pod_spec` (YAML merged as the
    pod's spec: GPU requests, the volume holding HARE_HOME/HARE_ARTIFACTS) through
    `PipesK8sClient` (extra `k8s`)."""

    launcher: str = "subprocess"
    processes: int = 1
    image: str | None = None
    namespace: str = "default"
    pod_spec: str | None = None

    def command(self, module: str, config: dict, python: str | None = None, distributed: bool = False) -> list[str]:
        return launch_command(module, config, self.processes if distributed else 1, python or sys.executable)

    def run(self, context: dg.AssetExecutionContext, module: str, config: dict,
            env: dict[str, str] | None = None, distributed: bool = False) -> dg.PipesClientCompletedInvocation:
        env = {k: v for k, v in (env or {}).items() if v is not None}
        if self.launcher == "subprocess":
            return JobProcessClient().run(
                command=self.command(module, config, distributed=distributed), context=context, cwd=str(PROJECT_ROOT),
                env=env)
        if self.launcher == "k8s":
            try:
                from dagster_k8s import PipesK8sClient
            except ImportError as exc:
                raise dg.Failure('launcher "k8s" needs dagster-k8s: pip install -e ".[k8s]"') from exc
            return PipesK8sClient().run(
                context=context, image=self.image, command=self.command(module, config, "python", distributed),
                namespace=self.namespace, env=env, base_pod_spec=load_pod_spec(self.pod_spec),
            )
        raise dg.Failure(f"unknown launcher {self.launcher!r}: subprocess or k8s")


def launch_command(module: str, config: dict, processes: int, python: str) -> list[str]:
    """The job's command line; the config travels inline so that a pod needs no shared config file.

    Several processes: `accelerate launch` needs `--multi_gpu` to start more than one (without
    it, it runs a single process and says nothing); on CPU it cannot start several without MPI,
    so CPU runs use torchrun, whose environment `Accelerator` reads the same way.
    """
    args = ["-m", module, "--config-json", json.dumps(config, sort_keys=True)]
    if processes <= 1:
        return [python, *args]
    if config.get("device") == "cpu":
        return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), *args]
    return [
        python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", *args,  # precision and compile come from the job's config
    ]  # fmt: skip


def load_pod_spec(path: str | None) -> dict | None:
    if not path:
        return None
    file = Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path
    spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    return spec.get("spec", spec) if isinstance(spec, dict) else None


class JobProcessClient(dg.PipesSubprocessClient):
    """`PipesSubprocessClient` whose job cannot outlive its run: the job dies with the process that
    launched it (SIGTERM on its parent's death, so torchrun still stops its ranks), and an interrupted
    step (Ctrl-C, SIGTERM, a run terminated from the UI) stops the job's whole process tree, with
    SIGKILL after a short grace, instead of one SIGINT and a 20 s wait. Training keeps its last saved
    state; the next run resumes from it."""

    def run(self, *, context: dg.AssetExecutionContext, command: Sequence[str], env: dict[str, str] | None = None,
            cwd: str | None = None, extras=None) -> dg.PipesClientCompletedInvocation:  # type: ignore[override]
        with open_pipes_session(context=context, context_injector=self.context_injector, message_reader=self.message_reader,
                                extras=extras) as session:
            process = subprocess.Popen(
                command, cwd=cwd or self.cwd, preexec_fn=die_with_parent(signal.SIGTERM),
                env={**os.environ, **self.env, **(env or {}), **session.get_bootstrap_env_vars()},
            )
            try:
                if process.wait() != 0:
                    raise DagsterPipesExecutionError(f"{command[2] if len(command) > 2 else command[0]} exited with code "
                                                        f"{process.returncode}; its output above says why")
            except (DagsterExecutionInterruptedError, KeyboardInterrupt):
                killed = stop_tree(process.pid, first=signal.SIGTERM, grace=3.0)
                context.log.warning(f"interrupted: job process {process.pid} stopped"
                                    + (f" ({killed} process(es) killed after 3 s)" if killed else ""))
                raise
        return dg.PipesClientCompletedInvocation(session)

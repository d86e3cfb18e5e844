"""What every Pipes job module (`train_job`, `eval_job`, `leakage_job`) shares: its config from the
command line, and the Dagster Pipes session when Dagster launched it.

A job runs the same by hand (`--config file.json`) and under the launcher resource
(`--config-json '{...}'`, inline so that a Kubernetes pod needs no shared config file). Under
`accelerate launch` or torchrun only rank 0 talks to Dagster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def pipes_session() -> Iterator[Any]:
    """The Pipes context when Dagster launched us (and we are rank 0), else None."""
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if is_main_rank() and PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as context:
            yield context
    else:
        yield None


def job_logger(pipes: Any) -> Callable[[str], None]:
    """Print (the terminal, `kubectl logs`) and, under Pipes, log to the run (the UI)."""
    def log(message: str) -> None:
        print(message, flush=True)
        if pipes is not None:
            pipes.log.info(message)

    return log


def read_config(argv: list[str] | None, description: str, what: str, override: tuple[str, str, type] | None = None) -> dict:
    """The job's config dict from `--config FILE` or `--config-json JSON`; `override` is an optional
    (flag, field, type) that replaces one field, e.g. ("--max-steps", "max_steps", int)."""
    parser = argparse.ArgumentParser(description=description)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help=f"JSON file with {what} fields")
    source.add_argument("--config-json", help="the same JSON inline (how the Dagster launcher passes it)")
    if override:
        parser.add_argument(override[0], type=override[2], dest="override", help=f"override {override[1]}")
    args = parser.parse_args(argv)
    raw = json.loads(args.config_json or Path(args.config).read_text())
    if override and args.override is not None:
        raw[override[1]] = args.override
    return raw


def exit_now(code: int) -> NoReturn:
    """End a job that returned: its files are written and renamed and the Pipes session is closed, so the
    interpreter's teardown (about 3 s with torch and transformers loaded, on 2 cores) buys nothing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""Shared fixtures: the real data folder (HARE_REAL_DATA) and isolated storage roots."""

import os
import shutil
from pathlib import Path

import pytest

from hare_assets.cli import main
from hare_assets.lib.paths import PROJECT_ROOT
from hare_assets.lib.storage import TableStore


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared real data. Unset: the test is skipped with a reason. Set but missing: the test fails."""
    value = os.environ.get("HARE_REAL_DATA")
    if not value:
        pytest.skip("HARE_REAL_DATA is not set (.ci/run sets it to ../shared/data)")
    path = Path(value)
    if not path.is_absolute():
        path = (PROJECT_ROOT / path).resolve()
    if not (path / "corpora").is_dir() or not (path / "benchmarks").is_dir():
        pytest.fail(f"HARE_REAL_DATA={value} has no corpora/ and benchmarks/ (resolved to {path})")
    os.environ["HARE_REAL_DATA"] = str(path)  # profiles expand ${HARE_REAL_DATA}
    return path


@pytest.fixture
def home(tmp_path: Path) -> str:
    return str(tmp_path / "home")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`hare demo` uninterrupted into a fresh HARE_HOME and a fresh Dagster instance (once per session)."""
    root = tmp_path_factory.mktemp("demo")
    shutil.copy(PROJECT_ROOT / "dagster.yaml", root / "dagster.yaml")
    mp = pytest.MonkeyPatch()
    mp.setenv("HARE_HOME", str(root / "data"))
    mp.setenv("DAGSTER_HOME", str(root))
    mp.setenv("HARE_CACHE", str(root / "cache"))
    mp.chdir(root)
    assert main(["demo", "--profile", "demo"]) == 0
    yield TableStore(str(root / "data")), root
    mp.undo()


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster of two CPUs, started once; the engine's `ray.init` finds it connected."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()

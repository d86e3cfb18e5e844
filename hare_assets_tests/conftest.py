"""Shared fixtures: the real data folder (HARE_REAL_DATA) and isolated storage roots."""

import os
import shutil
from pathlib import Path

# Under pytest-xdist each worker gets its share of the cores for torch, the tokenizers and the jobs it starts (they
# inherit the environment): two workers each running a model on every core spin against each other.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

import pytest

from hare_assets.cli import main
from hare_assets.lib.paths import PROJECT_ROOT
from hare_assets.lib.storage import TableStore

# Tests give each run its own HARE_CACHE; converted models (the packaged SmolLM2, about 40 s to convert) are shared
# by every test and xdist worker instead: where `make setup` put them, or where the first test to need one does.
os.environ.setdefault("HARE_MODELS", str(PROJECT_ROOT / ".hare" / "cache" / "models"))


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


# Session fixtures that take minutes to build. `make test` spreads the suite over every core (pytest-xdist);
# the modules whose tests use one of them go to a single worker, so each is built once, and every other test is
# scheduled on its own. (xdist's own `--dist loadgroup` does not group under pytest 9.2: it rewrites a node id
# attribute that pytest no longer reads.)
SHARED_FIXTURES = {"demo_run", "corpora", "ray_cluster"}
SHARED_MODULES = (
    "hare_assets_tests/test_demo.py", "hare_assets_tests/test_recovery.py", "hare_assets_tests/lib/test_shard_pools.py",
    "hare_assets_tests/defs/curate/test_ray_engine.py", "hare_assets_tests/defs/curate/test_real_corpora.py",
    "hare_assets_tests/defs/integrity/test_real_integrity.py",
)


def pytest_collection_modifyitems(items):
    """A test that uses a shared fixture outside SHARED_MODULES would build it again on another worker."""
    stray = [i.nodeid for i in items if SHARED_FIXTURES & set(getattr(i, "fixturenames", ()))
             and not i.nodeid.startswith(SHARED_MODULES)]
    if stray:
        raise pytest.UsageError(f"add these tests' modules to SHARED_MODULES in conftest.py: {stray}")


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixturesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "shared" if nodeid.startswith(SHARED_MODULES) else nodeid

    return SharedFixturesTogether(config, log)

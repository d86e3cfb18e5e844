"""Shared fixtures: the real data folder (HARE_REAL_DATA) and isolated storage roots."""

import os
from pathlib import Path

import pytest

from hare_assets.lib.paths import PROJECT_ROOT


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

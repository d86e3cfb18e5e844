"""Where things live: the checkout, its profiles, the demo corpus and `HARE_HOME`."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT = PACKAGE_DIR.parent
PROFILES_DIR = PROJECT_ROOT / "resources" / "profiles"
DEMO_DIR = PACKAGE_DIR / "demo"


def hare_home() -> str:
    """Storage root for every asset: `HARE_HOME` (a path or an fsspec URL such as s3://bucket/hare).

    Defaults to `.hare/data` in the checkout, which git ignores.
    """
    return os.environ.get("HARE_HOME") or str(PROJECT_ROOT / ".hare" / "data")


def cache_dir() -> Path:
    """Local caches (generation replies, embeddings by doc_id): `HARE_CACHE`, default `.hare/cache`."""
    return Path(os.environ.get("HARE_CACHE") or PROJECT_ROOT / ".hare" / "cache")

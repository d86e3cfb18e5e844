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


def models_dir() -> Path:
    """Model weights converted for local backends (a GGUF dequantized once): `HARE_MODELS`, default
    `<HARE_CACHE>/models`."""
    return Path(os.environ.get("HARE_MODELS") or cache_dir() / "models")


def artifacts_dir(home: str | None = None) -> Path:
    """Local files that are not tables: packed token shards and checkpoints. `HARE_ARTIFACTS`, else
    `<HARE_HOME>/_artifacts` when the home is a local path, else `.hare/artifacts` in the checkout
    (training reads memory-mapped shards and writes checkpoints on a local or mounted disk)."""
    if os.environ.get("HARE_ARTIFACTS"):
        return Path(os.environ["HARE_ARTIFACTS"])
    home = home or hare_home()
    if "://" in home and not home.startswith("file://"):
        return PROJECT_ROOT / ".hare" / "artifacts"
    return Path(home.removeprefix("file://")) / "_artifacts"

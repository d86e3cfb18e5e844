"""What a rerun of `hare demo` still has to do: every asset partition whose newest materialization came
from the same plan (profile + code) into the same HARE_HOME, after its inputs' newest ones, is done.

Each asset writes its outputs atomically before Dagster records the materialization, so a recorded
materialization means its files are whole; a run killed half-way leaves the finished assets
recorded and the unfinished ones not. The plan fingerprint makes any profile or code change redo
everything it could affect (`--fresh` redoes everything regardless).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import dagster as dg

from hare_assets.lib.paths import PACKAGE_DIR, PROJECT_ROOT
from hare_assets.lib.profile import Profile

PLAN_TAG, HOME_TAG = "hare/plan", "hare/home"


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the package's code and of the prompt templates and registries the graph reads."""
    digest = hashlib.sha256()
    files = [*PACKAGE_DIR.rglob("*.py"), *(PROJECT_ROOT / "resources").rglob("*.yaml")]
    for path in sorted(p for p in files if "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def plan_fingerprint(profile: Profile) -> str:
    payload = json.dumps(profile.model_dump(mode="json"), sort_keys=True, default=str)
    return hashlib.sha256(f"{payload}\n{code_fingerprint()}".encode()).hexdigest()[:16]


def plan_tags(plan: str, home: str) -> dict[str, str]:
    return {PLAN_TAG: plan, HOME_TAG: home}


class ResumeCheck:
    """Answers "is (asset, partition) done?" against one instance for one plan and home."""

    def __init__(self, instance: dg.DagsterInstance, defs: dg.Definitions, plan: str, home: str):
        self.instance, self.plan, self.home = instance, plan, home
        self.graph = defs.resolve_asset_graph()
        self._tags: dict[str, dict[str, str]] = {}

    def pending(self, keys: list[dg.AssetKey], partition: str | None) -> list[dg.AssetKey]:
        """The keys (in the order given) that a run for `partition` still has to materialize."""
        return [key for key in keys if not self.done(key, partition)]

    def done(self, key: dg.AssetKey, partition: str | None) -> bool:
        record = self._latest(key, partition if self._partitioned(key) else None)
        if record is None:
            return False
        tags = self._run_tags(record.run_id)
        if tags.get(PLAN_TAG) != self.plan or tags.get(HOME_TAG) != self.home:
            return False
        node = self.graph.get(key)
        for parent in node.parent_keys:
            if not self.graph.has(parent):
                continue
            same = self._partitioned(parent) and self.graph.get(parent).partitions_def == node.partitions_def
            upstream = self._latest(parent, partition if same else None)
            if upstream is not None and upstream.storage_id > record.storage_id:
                return False
        return True

    def _partitioned(self, key: dg.AssetKey) -> bool:
        return self.graph.get(key).partitions_def is not None

    def _latest(self, key: dg.AssetKey, partition: str | None):
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
        ).records
        return records[0] if records else None

    def _run_tags(self, run_id: str) -> dict[str, str]:
        if run_id not in self._tags:
            run = self.instance.get_run_by_id(run_id)
            self._tags[run_id] = dict(run.tags) if run else {}
        return self._tags[run_id]

"""Versioned prompt templates under resources/prompts/<stage>/<name>.<version>.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import yaml

from hare_assets.lib.paths import PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "resources" / "prompts"


@dataclass(frozen=True)
class PromptTemplate:
    stage: str
    name: str
    version: str
    system: str
    user: str

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.name}.{self.version}"

    def render(self, **fields: str) -> str:
        return self.user.format(**fields).strip()


@lru_cache(maxsize=64)
def load_template(stage: str, name: str, version: str) -> PromptTemplate:
    path = PROMPTS_DIR / stage / f"{name}.{version}.yaml"
    if not path.is_file():
        known = sorted(p.name for p in (PROMPTS_DIR / stage).glob("*.yaml"))
        raise FileNotFoundError(f"no prompt template {path}; templates in {stage}/: {known}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return PromptTemplate(stage, name, version, data["system"].strip(), data["user"])

"""Row accounting: every stage must explain each input row as kept, removed (by reason) or quarantined."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Account:
    rows_in: int
    rows_out: int
    removed: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0

    @property
    def rows_removed(self) -> int:
        return sum(self.removed.values())

    @property
    def unexplained(self) -> int:
        """Rows that vanished (positive) or appeared (negative) without a reason; 0 when balanced."""
        return self.rows_in - self.rows_out - self.rows_removed - self.quarantined

    @property
    def balanced(self) -> bool:
        return self.unexplained == 0

    def summary(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.removed.items())) or "none"
        return (
            f"in {self.rows_in} = out {self.rows_out} + removed {self.rows_removed} ({reasons})"
            f" + quarantined {self.quarantined}" + ("" if self.balanced else f"; UNEXPLAINED {self.unexplained}")
        )

    @staticmethod
    def count(reasons: list[str]) -> dict[str, int]:
        return dict(sorted(Counter(reasons).items()))

"""Runs that materialize several partitions of an asset at once (a backfill under a multi-run policy, or the
demo's one run per stage): each partition is written as in a run of its own, and the run reports one result.

Why: a language model generates fastest in big batches, so the synthesis assets gather the requests of every
partition in the run into one generation call; the assets beside them in the same job take the same ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import dagster as dg

PARTITIONS_PER_RUN = 16  # topics or tasks per run in a backfill: one batch of generation, memory bounded by it


def backfill_policy() -> dg.BackfillPolicy:
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=PARTITIONS_PER_RUN)


def each_partition(context: dg.AssetExecutionContext, one: Callable[[str], dg.MaterializeResult]) -> dg.MaterializeResult:
    """`one(partition)` for every partition of the run, reported as one result (`combined`)."""
    return combined({key: one(key) for key in context.partition_keys})


def combined(results: Mapping[str, dg.MaterializeResult]) -> dg.MaterializeResult:
    """One partition: its own result. Several: counts summed, every other value kept under `<partition>/<key>`,
    a table of the partitions' counts, and each check passed only if it passed for every partition."""
    if len(results) == 1:
        return next(iter(results.values()))
    totals: dict[str, int] = {}
    metadata: dict[str, dg.MetadataValue] = {}
    rows = []
    for partition, result in results.items():
        counts = {k: v.value for k, v in (result.metadata or {}).items() if isinstance(v, dg.IntMetadataValue)}
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + int(value or 0)
        rows.append((partition, counts))
        metadata.update({f"{partition}/{k}": v for k, v in (result.metadata or {}).items() if k not in counts})
    keys = list(totals)
    table = ["| partition | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    table += [f"| {p} | " + " | ".join(str(c.get(k, "")) for k in keys) + " |" for p, c in rows]
    return dg.MaterializeResult(
        metadata={**{k: dg.MetadataValue.int(v) for k, v in totals.items()}, "partitions": dg.MetadataValue.md("\n".join(table)),
                  **metadata},
        check_results=_combined_checks(results),
    )


def _combined_checks(results: Mapping[str, dg.MaterializeResult]) -> list[dg.AssetCheckResult]:
    by_check: dict[tuple, list[tuple[str, dg.AssetCheckResult]]] = {}
    for partition, result in results.items():
        for check in result.check_results or []:
            by_check.setdefault((check.asset_key, check.check_name), []).append((partition, check))
    out = []
    for (asset_key, name), checks in by_check.items():
        sums: dict[str, int] = {}
        for _, check in checks:
            for key, value in (check.metadata or {}).items():
                raw = value.value if isinstance(value, dg.MetadataValue) else value
                if isinstance(raw, int) and not isinstance(raw, bool):
                    sums[key] = sums.get(key, 0) + raw
        failed = [p for p, c in checks if not c.passed]
        out.append(dg.AssetCheckResult(
            asset_key=asset_key, check_name=name, passed=not failed, severity=checks[0][1].severity, metadata=sums,
            description=(f"failed for {', '.join(failed)}: " if failed else "") + "; ".join(f"{p}: {c.description}" for p, c in checks),
        ))
    return out

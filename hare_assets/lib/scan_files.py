"""`hare scan`: benchmark-leakage scan of arbitrary files, outside Dagster (the graph's index and rule)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hare_assets.lib.benchmarks import benchmarks_dir as default_benchmarks_dir
from hare_assets.lib.benchmarks import load_items, load_registry
from hare_assets.lib.decontam import DecontamRule, NgramIndex, scan, scan_batch
from hare_assets.lib.dedup_files import iter_documents

_SPAN_CHARS = 300  # of each matched span, in the report
_SPANS_PER_DOC = 5


def leaderboard_benchmarks(registry_path: str | Path | None = None) -> list[str]:
    """The benchmarks a scan checks by default: every registry entry with a canonical release (not demo_mc)."""
    return [name for name, spec in load_registry(registry_path).items() if spec.hf is not None]


def build_index(
    n: int, benchmarks_dir: Path | None = None, benchmarks: Sequence[str] | None = None
) -> tuple[NgramIndex, dict[str, Any]]:
    """The n-gram index of the named benchmarks (local folder, else `HARE_BENCHMARKS_DIR`, else the hub)."""
    specs = load_registry()
    names = list(benchmarks or leaderboard_benchmarks())
    unknown = sorted(set(names) - set(specs))
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; the registry has {sorted(specs)}")
    local = benchmarks_dir or default_benchmarks_dir()
    items, info = [], {}
    for name in names:
        spec = specs[name]
        loaded = load_items(spec, local if spec.builtin is None else None)
        items += loaded
        info[name] = {
            "items": len(loaded),
            "splits": sorted({i.split for i in loaded}),
            "missing_splits": spec.missing_local_splits() if local and spec.builtin is None else [],
        }
    return NgramIndex.build(items, n), info


def scan_paths(
    paths: Sequence[str | Path],
    benchmarks_dir: str | Path | None = None,
    n: int = 13,
    rule: DecontamRule | None = None,
    text_field: str = "text",
    columns: list[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    index: NgramIndex | None = None,
    worst: int = 10,
    max_doc_bytes: int = 64_000_000,
) -> dict[str, Any]:
    """Scan .jsonl[.gz|.zst], .parquet, .txt, .tsv, .csv files or folders; one JSON-able report."""
    started = time.perf_counter()
    rule = rule or DecontamRule(n=n)
    info: dict[str, Any] = {}
    if index is None:
        index, info = build_index(rule.n, Path(benchmarks_dir) if benchmarks_dir else None, benchmarks)
    if index.n != rule.n:
        raise ValueError(f"index has n={index.n}, rule wants n={rule.n}")

    quarantined: list[dict] = []
    files, scanned, with_hits, flagged_total = set(), 0, 0, 0
    hits, docs = [], []
    per_benchmark: dict[str, dict[str, Any]] = defaultdict(lambda: {"documents": 0, "flagged": 0, "items": set()})
    for file_index, file, records in iter_documents([Path(p) for p in paths], quarantined, text_field, columns, max_doc_bytes):
        files.add(file_index)  # batch by batch: memory holds one batch and the documents with hits
        texts = [d["text"] for d in records.docs]
        batch = scan_batch(texts, index, rule) if texts else None
        if batch is None:
            continue
        flagged = batch.contaminated
        scanned, with_hits, flagged_total = scanned + len(texts), with_hits + len(batch.hits), flagged_total + int(flagged.sum())
        for i in sorted(batch.hits):
            where = {"file": str(file), "row": records.docs[i]["row"]}
            detail = scan(texts[i], index)  # spans in the original text: only for documents with hits
            matched = [texts[i][a:b][:_SPAN_CHARS] for a, b in detail.spans[:_SPANS_PER_DOC]]
            rates = {kind: round(detail.rate(kind, rule.gap), 4) for kind in ("coverage", "positions", "strict")}
            doc = {**where, "words": detail.words, "rate": round(float(batch.rates[i]), 4), **{f"rate_{k}": v for k, v in rates.items()},
                   "flagged": bool(flagged[i]), "matched": matched}
            docs.append(doc)
            for bench in {h.benchmark for h in batch.hits[i]}:
                entry = per_benchmark[bench]
                entry["documents"] += 1
                entry["flagged"] += int(flagged[i])
            for h in batch.hits[i]:
                per_benchmark[h.benchmark]["items"].add(h.item_id)
                hits.append({**where, "benchmark": h.benchmark, "split": h.split, "item_id": h.item_id,
                             "matched_ngrams": h.matched_ngrams, "item_share": h.item_share, "rate": doc["rate"], "flagged": doc["flagged"], "matched": matched})
    return {
        "files": len(files),
        "documents_scanned": scanned,
        "documents_with_hits": with_hits,
        "documents_flagged": flagged_total,
        "rule": {"n": rule.n, "rate": rule.rate, "threshold": rule.threshold, "bridge": rule.gap, "min_item_share": rule.min_item_share},
        "index": {**index.stats(), "benchmarks": info},
        "per_benchmark": {
            b: {"documents": e["documents"], "flagged": e["flagged"], "items": len(e["items"])} for b, e in sorted(per_benchmark.items())
        },
        "hits": hits,
        "worst": sorted(docs, key=lambda d: (-d["rate"], d["file"], d["row"]))[:worst],
        "quarantined": quarantined,
        "seconds": round(time.perf_counter() - started, 3),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report for a human: totals, the rule, per-benchmark counts and the worst documents."""
    rule = report["rule"]
    lines = [
        f"scanned {report['documents_scanned']} documents in {report['files']} files: "
        f"{report['documents_flagged']} flagged, {report['documents_with_hits']} with any benchmark n-gram",
        f"rule: {rule['rate']} >= {rule['threshold']} at n={rule['n']}"
        + (f" (bridge {rule['bridge']})" if rule["rate"] == "coverage" else "")
        + (f", or >= {rule['min_item_share']:.0%} of one item" if rule.get("min_item_share") else ""),
    ]
    for name, info in (report["index"].get("benchmarks") or {}).items():
        missing = f"; not indexed (absent locally): {', '.join(info['missing_splits'])}" if info["missing_splits"] else ""
        lines.append(f"  index {name}: {info['items']} items ({', '.join(info['splits'])}){missing}")
    if report["per_benchmark"]:
        lines.append("per benchmark (documents with hits / flagged / distinct items):")
        width = max(map(len, report["per_benchmark"]))
        lines += [f"  {b:<{width}}  {e['documents']:>6} {e['flagged']:>6} {e['items']:>6}" for b, e in report["per_benchmark"].items()]
    if report["worst"]:
        lines.append("worst documents:")
        items_by_doc: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
        for h in report["hits"]:
            items_by_doc[(h["file"], h["row"])][f"{h['benchmark']}:{h['item_id']}"] += h["matched_ngrams"]
        for d in report["worst"]:
            top = ", ".join(k for k, _ in items_by_doc[(d["file"], d["row"])].most_common(2))
            flag = "FLAGGED" if d["flagged"] else "hit"
            lines.append(f"  {flag:7} {d['rate']:.3f}  {d['file']}:{d['row']}  ({d['words']} words)  {top}")
            for span in d["matched"][:2]:
                lines.append(f"           | {' '.join(span.split())[:160]}")
    if report["quarantined"]:
        lines.append(f"{len(report['quarantined'])} records could not be read (see 'quarantined')")
    return "\n".join(lines)

"""Lineage for people: from a benchmark score back to the source shards, and what changed between two
checkpoints.

Every trained checkpoint is recorded with a snapshot of the data behind it, so that a score can be
explained (and compared) after the tables have moved on:

    checkpoints/<id>              one row: stage, path, parent (init_from), steps, tokens, loss, settings JSON
    checkpoints__manifest/<id>    the training mixture's tokens per dataset, source, shard and topic
    checkpoints__accounting/<id>  rows kept and removed (by reason) per stage and source when it was trained
    benchmark_scores__history/<id>__<benchmark>   the scores of that checkpoint (all, clean, contaminated)

`explain` walks score → checkpoint (→ its parent) → mixture → datasets, topics and source shards,
with the removal accounting and the benchmark's contamination hits on the way; `diff` compares two
checkpoints: score deltas, tokens per source/shard/topic, shards added or removed, settings changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import Any

import polars as pl

from hare_assets.lib.storage import TableStore

CHECKPOINTS = "checkpoints"
CHECKPOINT_MANIFESTS = "checkpoints__manifest"
CHECKPOINT_ACCOUNTING = "checkpoints__accounting"
SCORES = "benchmark_scores"
SCORES_HISTORY = "benchmark_scores__history"
SAMPLES_HISTORY = "benchmark_scores__samples_history"  # per checkpoint and benchmark: item_id, split, score
HITS = "contamination_hits"
BASELINES = "baselines"  # one row per external model scored beside the checkpoints (CHECKPOINT_SCHEMA, stage "baseline")
BASELINE_STAGE = "baseline"
# The per-source tables that account for D1 rows, in pipeline order: (stage, kept table, removed tables).
D1_STAGES = (
    ("raw_documents", "raw_documents", ("raw_documents__quarantine",)),
    ("clean_documents", "clean_documents", ("clean_documents__removed", "clean_documents__quarantine")),
    ("deduplicated_documents", "deduplicated_documents", ("deduplicated_documents__removed",)),
    ("decontaminated_documents", "decontaminated_documents", ("decontaminated_documents__removed",)),
)
SETTINGS = ("sources", "clean", "dedup", "integrity", "topics", "generator", "synthesis", "tasks", "mixture", "model", "training")


class LineageError(LookupError):
    """A reference that names no recorded checkpoint or score; the message says what exists."""


# --- writing ---------------------------------------------------------------------------------------


def checkpoint_id(stage: str, config: Any, data_fingerprint: str, parent: str | None) -> str:
    """Names a checkpoint by what determines its weights: the training config, the data and the parent.

    The parent counts by its id, not by the folder its weights lie in, so the same training gets
    the same id under any HARE_HOME (a copied artifact store, a cluster's volume)."""
    blob = json.dumps([dataclasses.replace(config, init_from=None).fingerprint(), data_fingerprint, parent], sort_keys=True)
    return f"{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def settings_snapshot(profile: Any) -> str:
    """The profile sections that shape the data and the model, as sorted JSON (for `diff`)."""
    dumped = profile.model_dump(mode="json")
    return json.dumps({k: dumped[k] for k in SETTINGS}, sort_keys=True)


CHECKPOINT_SCHEMA = {
    "checkpoint_id": pl.String, "stage": pl.String, "path": pl.String, "created_at": pl.String, "init_from": pl.String,
    "preset": pl.String, "steps": pl.Int64, "tokens": pl.Int64, "final_loss": pl.Float64, "tokens_per_s": pl.Float64,
    "params": pl.Int64, "data_fingerprint": pl.String, "settings": pl.String,
}


def checkpoint_record(ckpt_id: str, stage: str, config: Any, result: dict, parent: str | None, settings: str) -> dict:
    """One `checkpoints` row (CHECKPOINT_SCHEMA)."""
    return {
        "checkpoint_id": ckpt_id,
        "stage": stage,
        "path": result.get("checkpoint") or f"{config.out_dir}/checkpoint",
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "init_from": parent,
        "preset": config.preset,
        "steps": int(result["steps"]),
        "tokens": int(result["tokens"]),
        "final_loss": float(result["final_loss"]),
        "tokens_per_s": float(result["tokens_per_s"]),
        "params": int(result["params"]),
        "data_fingerprint": result.get("data_fingerprint"),
        "settings": settings,
    }


def baseline_id(name: str) -> str:
    return f"{BASELINE_STAGE}-{name}"


def baseline_record(name: str, model: str, path: str) -> dict:
    """One `baselines` row: an external model stands in the same history as the checkpoints, with no training."""
    return {**{k: None for k in CHECKPOINT_SCHEMA}, "checkpoint_id": baseline_id(name), "stage": BASELINE_STAGE, "path": path,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "preset": name,
            "settings": json.dumps({"baseline": {"name": name, "model": model}})}


def accounting_snapshot(tables: TableStore) -> pl.DataFrame:
    """Rows per D1 stage and source: `kept`, or removed/quarantined with the reason (current tables)."""
    rows: list[dict] = []
    for stage, kept_table, removed_tables in D1_STAGES:
        for partition in tables.partitions(kept_table):
            kept = tables.read(kept_table, partition, columns=["source"])
            rows += [{"stage": stage, "source": s, "reason": "kept", "rows": n}
                     for s, n in kept.group_by("source").len().iter_rows()]
        for table in removed_tables:
            for partition in tables.partitions(table):
                removed = tables.read(table, partition, columns=["source", "reason"])
                rows += [{"stage": stage, "source": s, "reason": r, "rows": n}
                         for s, r, n in removed.group_by("source", "reason").len().iter_rows()]
    schema = {"stage": pl.String, "source": pl.String, "reason": pl.String, "rows": pl.Int64}
    order = {stage: i for i, (stage, _, _) in enumerate(D1_STAGES)}
    return (pl.DataFrame(rows, schema=schema).group_by("stage", "source", "reason").agg(pl.col("rows").sum())
            .sort(pl.col("stage").replace_strict(order, return_dtype=pl.Int32), "source", "reason"))


# --- reading ---------------------------------------------------------------------------------------


def _all(tables: TableStore, table: str) -> pl.DataFrame | None:
    parts = tables.partitions(table)
    return pl.concat([tables.read(table, p) for p in parts], how="diagonal_relaxed") if parts else None


def checkpoints(tables: TableStore) -> pl.DataFrame:
    rows = _all(tables, CHECKPOINTS)
    if rows is None:
        raise LineageError(f"no checkpoint has been trained under {tables.root}: materialize checkpoint[stage1] (hare demo)")
    return rows.sort("created_at", "checkpoint_id")


def latest_checkpoint(tables: TableStore, stage: str) -> dict | None:
    """The newest recorded checkpoint of a stage, or None."""
    if not tables.partitions(CHECKPOINTS):
        return None
    rows = checkpoints(tables).filter(pl.col("stage") == stage)
    return rows.row(-1, named=True) if rows.height else None


def models(tables: TableStore) -> pl.DataFrame:
    """The trained checkpoints and the scored baselines."""
    baselines = _all(tables, BASELINES)
    if baselines is None:
        return checkpoints(tables)
    trained = checkpoints(tables) if tables.partitions(CHECKPOINTS) else None
    return pl.concat([f for f in (trained, baselines) if f is not None], how="diagonal_relaxed")


def resolve(tables: TableStore, ref: str) -> dict:
    """A checkpoint by id, unique id prefix, stage name (the newest of that stage) or `stage~N` (N before it);
    a baseline by its id or its name in the profile."""
    rows = models(tables)
    if baseline_id(ref) in set(rows["checkpoint_id"]):
        ref = baseline_id(ref)
    stage, _, back = ref.partition("~")
    if stage in set(rows["stage"]):
        of_stage = rows.filter(pl.col("stage") == stage)
        k = int(back or 0)
        if k >= of_stage.height:
            raise LineageError(f"{ref}: only {of_stage.height} {stage} checkpoint(s) recorded")
        return of_stage.row(of_stage.height - 1 - k, named=True)
    matches = rows.filter(pl.col("checkpoint_id").str.starts_with(ref))
    if matches.height == 1:
        return matches.row(0, named=True)
    known = ", ".join(rows["checkpoint_id"].to_list())
    raise LineageError(f"{ref!r} names {'several' if matches.height else 'no'} checkpoint(s); known: {known}; or a stage (stage2, stage2~1) "
                       "or a baseline's name")


def scores(tables: TableStore, ckpt_id: str) -> pl.DataFrame:
    parts = [p for p in tables.partitions(SCORES_HISTORY) if p.startswith(f"{ckpt_id}__")]
    if not parts:
        return pl.DataFrame(schema={"benchmark": pl.String, "metric": pl.String, "subset": pl.String, "value": pl.Float64,
                                    "stderr": pl.Float64, "n": pl.Int64})
    return pl.concat([tables.read(SCORES_HISTORY, p) for p in parts], how="diagonal_relaxed")


def item_changes(tables: TableStore, ckpt_a: str, ckpt_b: str, examples: int = 5) -> list[dict]:
    """Per benchmark both checkpoints were scored on: how many items scored higher, lower or the
    same on the main metric from a to b, whether a changed item has a contamination hit, and a
    few ids of each. A shifted score is then a list of items to read, not just a number."""
    parts = set(tables.partitions(SAMPLES_HISTORY))
    scored_a = sorted(p.split("__", 1)[1] for p in parts if p.startswith(f"{ckpt_a}__"))
    pairs = [benchmark for benchmark in scored_a if f"{ckpt_b}__{benchmark}" in parts]
    if not pairs:
        return []
    contaminated = set(tables.read(HITS, columns=["benchmark", "item_id"]).iter_rows()) if tables.exists(HITS) else set()
    out = []
    keys = ["split", "item_id"]
    for benchmark in pairs:
        a = tables.read(SAMPLES_HISTORY, f"{ckpt_a}__{benchmark}").select(*keys, pl.col("score").alias("a"))
        b = tables.read(SAMPLES_HISTORY, f"{ckpt_b}__{benchmark}").select(*keys, pl.col("score").alias("b"))
        both = a.join(b, on=keys, how="inner").with_columns((pl.col("b") - pl.col("a")).alias("delta"))
        up, down = both.filter(pl.col("delta") > 1e-9), both.filter(pl.col("delta") < -1e-9)
        changed = pl.concat([up, down])["item_id"].to_list()
        out.append({
            "benchmark": benchmark, "items": both.height, "higher": up.height, "lower": down.height,
            "same": both.height - up.height - down.height,
            "changed_contaminated": sum((benchmark, i) in contaminated for i in changed),
            "higher_examples": up.sort("delta", descending=True)["item_id"].head(examples).to_list(),
            "lower_examples": down.sort("delta")["item_id"].head(examples).to_list(),
        })
    return out


def _table_for(tables: TableStore, table: str, ckpt_id: str) -> pl.DataFrame:
    if not tables.exists(table, ckpt_id):
        raise LineageError(f"{ckpt_id} has no {table} snapshot (trained before lineage was recorded?)")
    return tables.read(table, ckpt_id)


def evaluated_checkpoint(tables: TableStore, benchmark: str, ref: str | None) -> dict:
    """`ref`'s checkpoint, or the newest one with scores on `benchmark` (stage2 before stage1)."""
    if ref:
        return resolve(tables, ref)
    rows = checkpoints(tables)
    evaluated = {p.split("__", 1)[0] for p in tables.partitions(SCORES_HISTORY) if p.endswith(f"__{benchmark}")}
    rows = rows.filter(pl.col("checkpoint_id").is_in(list(evaluated)))
    if not rows.height:
        raise LineageError(f"no checkpoint has scores on {benchmark!r}: materialize benchmark_scores for it")
    return rows.sort(pl.col("stage"), "created_at").row(-1, named=True)


def previous_evaluated(tables: TableStore, stage: str, benchmark: str, ckpt_id: str) -> str | None:
    """The checkpoint of `stage` evaluated on `benchmark` before `ckpt_id` (what a shifted score is compared with)."""
    evaluated = {p.split("__", 1)[0] for p in tables.partitions(SCORES_HISTORY) if p.endswith(f"__{benchmark}")}
    recorded = checkpoints(tables)
    rows = recorded.filter((pl.col("stage") == stage) & pl.col("checkpoint_id").is_in(list(evaluated - {ckpt_id})))
    current = recorded.filter(pl.col("checkpoint_id") == ckpt_id)["created_at"]
    rows = rows.filter(pl.col("created_at") <= current[0]) if current.len() else rows
    return rows["checkpoint_id"][-1] if rows.height else None


def explain(tables: TableStore, benchmark: str, ref: str | None = None, top: int = 5) -> dict:
    """Everything behind one benchmark score, as a JSON-able dict (`render_explain` prints it)."""
    ckpt = evaluated_checkpoint(tables, benchmark, ref)
    if ckpt["stage"] == BASELINE_STAGE:
        raise LineageError(f"{ckpt['checkpoint_id']} is an external model ({json.loads(ckpt['settings'])['baseline']['model']}): "
                           f"it has scores but no training data here to trace; `hare diff {ckpt['checkpoint_id']} stage2` compares it")
    chain = [ckpt]
    while chain[-1].get("init_from"):
        chain.append(resolve(tables, chain[-1]["init_from"]))
    own = scores(tables, ckpt["checkpoint_id"]).filter(pl.col("benchmark") == benchmark)
    manifest = _table_for(tables, CHECKPOINT_MANIFESTS, ckpt["checkpoint_id"])
    total = int(manifest["tokens"].sum())
    datasets = manifest.group_by("dataset").agg(pl.col("tokens").sum(), pl.col("documents").sum()).sort("dataset")
    sources = (manifest.group_by("dataset", "source").agg(pl.col("tokens").sum(), pl.col("shard").n_unique().alias("shards"))
               .sort("dataset", pl.col("tokens"), descending=[False, True]))
    shards = manifest.group_by("source", "shard").agg(pl.col("tokens").sum()).sort("tokens", descending=True).head(top)
    topics = (manifest.filter(pl.col("topic").is_not_null()).group_by("topic").agg(pl.col("tokens").sum())
              .sort("tokens", descending=True).head(top))
    accounting = (tables.read(CHECKPOINT_ACCOUNTING, ckpt["checkpoint_id"]) if tables.exists(CHECKPOINT_ACCOUNTING, ckpt["checkpoint_id"])
                  else pl.DataFrame(schema={"stage": pl.String, "source": pl.String, "reason": pl.String, "rows": pl.Int64}))
    hits = _hits_for(tables, benchmark)
    return {
        "benchmark": benchmark,
        "scores": own.to_dicts(),
        "checkpoints": [{k: c[k] for k in ("checkpoint_id", "stage", "path", "created_at", "steps", "tokens", "final_loss", "preset")}
                        for c in chain],
        "mixture": {"tokens": total, "datasets": datasets.to_dicts(), "sources": sources.to_dicts(),
                    "top_shards": shards.to_dicts(), "top_topics": topics.to_dicts()},
        "accounting": accounting.to_dicts(),
        "contamination": hits,
    }


def _hits_for(tables: TableStore, benchmark: str) -> dict:
    if not tables.exists(HITS):
        return {"documents": 0, "removed": 0, "excised": 0, "items": 0, "by_source": []}
    hits = tables.read(HITS).filter(pl.col("benchmark") == benchmark)

    def docs(action: str) -> pl.Expr:
        return pl.col("doc_id").filter(pl.col("action") == action).n_unique().alias(action)

    by_source = (hits.group_by("dataset", "source").agg(pl.col("doc_id").n_unique().alias("documents"), docs("removed"), docs("excised"),
                                                        pl.col("item_id").n_unique().alias("items")).sort("dataset", "source"))
    totals = hits.select(pl.struct("dataset", "doc_id").n_unique().alias("documents"), docs("removed"), docs("excised"),
                         pl.col("item_id").n_unique().alias("items")).row(0, named=True) if hits.height else {}
    return {"documents": totals.get("documents", 0), "removed": totals.get("removed", 0), "excised": totals.get("excised", 0),
            "items": totals.get("items", 0), "by_source": by_source.to_dicts()}


def render_explain(facts: dict) -> str:
    """The explain facts as an indented tree for a terminal (also the UI's markdown)."""
    lines = []
    main = [s for s in facts["scores"] if s["subset"] == "all"]
    for s in main:
        sub = {x["subset"]: x for x in facts["scores"] if x["metric"] == s["metric"] and x["subset"] != "all"}
        extra = "".join(f"; {k} {v['value']:.4f} (n={v['n']})" for k, v in sorted(sub.items()))
        lines.append(f"{facts['benchmark']} {s['metric']} = {s['value']:.4f} ± {s['stderr'] or 0:.4f} (n={s['n']}){extra}")
    for depth, c in enumerate(facts["checkpoints"]):
        pad = "  " * depth
        lines.append(f"{pad}└─ checkpoint {c['checkpoint_id']} ({c['stage']}, {c['preset']}, {c['steps']} steps, "
                     f"{c['tokens']:,} tokens, final loss {c['final_loss']:.3f}, {c['created_at']})")
    mix = facts["mixture"]
    lines.append(f"   └─ training_mixture: {mix['tokens']:,} tokens")
    for d in mix["datasets"]:
        lines.append(f"      ├─ {d['dataset']}: {d['tokens']:,} tokens ({100 * d['tokens'] / max(mix['tokens'], 1):.1f}%), {d['documents']} samples")
        for s in (x for x in mix["sources"] if x["dataset"] == d["dataset"]):
            lines.append(f"      │    {s['source']}: {s['tokens']:,} tokens from {s['shards']} shard(s)")
    if mix["top_topics"]:
        lines.append("      ├─ topics: " + ", ".join(f"{t['topic']} {t['tokens']:,}" for t in mix["top_topics"]))
    lines.append("      └─ top source shards: " + ", ".join(f"{s['source']}/{s['shard']} {s['tokens']:,}" for s in mix["top_shards"]))
    if facts["accounting"]:
        acc = pl.DataFrame(facts["accounting"])
        lines.append("   D1 accounting (rows per stage; kept, then removed by reason):")
        for stage in dict.fromkeys(acc["stage"].to_list()):
            part = acc.filter(pl.col("stage") == stage)
            kept = int(part.filter(pl.col("reason") == "kept")["rows"].sum())
            removed = part.filter(pl.col("reason") != "kept").group_by("reason").agg(pl.col("rows").sum()).sort("rows", descending=True)
            why = ", ".join(f"{r} {n}" for r, n in removed.iter_rows())
            lines.append(f"      {stage}: kept {kept}" + (f"; removed {why}" if why else ""))
    c = facts["contamination"]
    lines.append(f"   contamination hits on {facts['benchmark']}: {c['documents']} documents ({c['removed']} removed, {c['excised']} with "
                 f"the matched text cut out before training), {c['items']} items")
    for s in c["by_source"]:
        lines.append(f"      {s['dataset']} {s['source']}: {s['documents']} documents, {s['removed']} removed, {s['excised']} excised, "
                     f"{s['items']} items")
    return "\n".join(lines)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return _flatten({v["name"]: v for v in value}, prefix)  # sources, open tasks: by name
    return {prefix: value}


def continued_from(tables: TableStore, ref: str) -> str:
    """The checkpoint `ref` continued on new data (training.on_new_data: continue): its parent of the same stage."""
    ckpt = resolve(tables, ref)
    parent = ckpt["init_from"] and resolve(tables, ckpt["init_from"])
    if not parent or parent["stage"] != ckpt["stage"]:
        raise LineageError(f"{ckpt['checkpoint_id']} did not continue a {ckpt['stage']} checkpoint "
                           f"({'it started from ' + ckpt['init_from'] if ckpt['init_from'] else 'it started from scratch'}); "
                           "name two checkpoints: hare diff A B")
    return parent["checkpoint_id"]


def _manifest(tables: TableStore, model: dict) -> pl.DataFrame:
    """The tokens behind a checkpoint; none for a baseline (its training data is not ours to list)."""
    if model["stage"] != BASELINE_STAGE:
        return _table_for(tables, CHECKPOINT_MANIFESTS, model["checkpoint_id"])
    schema = {"dataset": pl.String, "source": pl.String, "shard": pl.String, "topic": pl.String, "tokens": pl.Int64}
    return pl.DataFrame(schema=schema)


def diff(tables: TableStore, ref_a: str, ref_b: str) -> dict:
    """What changed from checkpoint a to b: scores, data behind them, settings."""
    a, b = resolve(tables, ref_a), resolve(tables, ref_b)
    sa, sb = scores(tables, a["checkpoint_id"]), scores(tables, b["checkpoint_id"])
    keys = ["benchmark", "metric", "subset"]
    score_delta = (sa.select(*keys, pl.col("value").alias("a")).join(sb.select(*keys, pl.col("value").alias("b")), on=keys, how="full", coalesce=True)
                   .with_columns((pl.col("b") - pl.col("a")).alias("delta")).sort(keys))
    ma, mb = _manifest(tables, a), _manifest(tables, b)

    def per(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
        return frame.group_by(by).agg(pl.col("tokens").sum())

    def compare(by: list[str]) -> pl.DataFrame:
        return (per(ma, by).rename({"tokens": "a"}).join(per(mb, by).rename({"tokens": "b"}), on=by, how="full", coalesce=True)
                .fill_null(0).with_columns((pl.col("b") - pl.col("a")).alias("delta")).filter(pl.col("delta") != 0).sort(by, nulls_last=True))

    shards_a = set(ma.select(pl.concat_str("source", pl.lit("/"), "shard")).to_series())
    shards_b = set(mb.select(pl.concat_str("source", pl.lit("/"), "shard")).to_series())
    fa, fb = _flatten(json.loads(a["settings"])), _flatten(json.loads(b["settings"]))
    settings = [{"setting": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)]
    acc = {}
    for side, ckpt in (("a", a), ("b", b)):
        if tables.exists(CHECKPOINT_ACCOUNTING, ckpt["checkpoint_id"]):
            acc[side] = tables.read(CHECKPOINT_ACCOUNTING, ckpt["checkpoint_id"]).rename({"rows": side})
    removal = []
    if len(acc) == 2:
        removal = (acc["a"].join(acc["b"], on=["stage", "source", "reason"], how="full", coalesce=True).fill_null(0)
                   .with_columns((pl.col("b") - pl.col("a")).alias("delta")).filter(pl.col("delta") != 0)
                   .sort("stage", "source", "reason").to_dicts())
    return {
        "a": {k: a[k] for k in ("checkpoint_id", "stage", "created_at", "steps", "tokens", "final_loss")},
        "b": {k: b[k] for k in ("checkpoint_id", "stage", "created_at", "steps", "tokens", "final_loss")},
        "scores": score_delta.to_dicts(),
        "items": item_changes(tables, a["checkpoint_id"], b["checkpoint_id"]),
        "tokens_by_dataset": compare(["dataset"]).to_dicts(),
        "tokens_by_source": compare(["dataset", "source"]).to_dicts(),
        "tokens_by_topic": compare(["topic"]).to_dicts(),
        "tokens_by_shard": compare(["source", "shard"]).to_dicts(),
        "shards_added": sorted(shards_b - shards_a),
        "shards_removed": sorted(shards_a - shards_b),
        "settings_changed": settings,
        "rows_changed": removal,
    }


def render_diff(d: dict, top: int = 15) -> str:
    a, b = d["a"], d["b"]
    def line(side: str, m: dict) -> str:
        if m["stage"] == BASELINE_STAGE:
            return f"{side} = {m['checkpoint_id']} (external baseline, scored {m['created_at']}; no training data recorded)"
        return f"{side} = {m['checkpoint_id']} ({m['stage']}, {m['created_at']}, {m['steps']} steps, loss {m['final_loss']:.3f})"

    lines = [line("a", a), line("b", b), "scores (b - a):"]
    for s in d["scores"]:
        fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"  {s['benchmark']} {s['metric']} [{s['subset']}]: {fmt(s['a'])} -> {fmt(s['b'])} ({'+' if (s['delta'] or 0) >= 0 else ''}{fmt(s['delta'])})")
    for it in d.get("items", []):
        lines.append(f"  {it['benchmark']} items: {it['higher']} higher, {it['lower']} lower, {it['same']} same of {it['items']}"
                     f" ({it['changed_contaminated']} of the changed have contamination hits)")
        for side in ("lower", "higher"):
            if it[f"{side}_examples"]:
                lines.append(f"    {side}: " + ", ".join(it[f"{side}_examples"]))
    for key, title in (("tokens_by_dataset", "dataset"), ("tokens_by_source", "source"), ("tokens_by_topic", "topic"),
                       ("tokens_by_shard", "shard")):
        rows = d[key]
        lines.append(f"tokens by {title}: " + ("no change" if not rows else ""))
        for r in rows[:top]:
            name = "/".join("(none)" if r[k] is None else str(r[k]) for k in r if k not in ("a", "b", "delta"))
            lines.append(f"  {name}: {r['a']:,} -> {r['b']:,} ({r['delta']:+,})")
        if len(rows) > top:
            lines.append(f"  … {len(rows) - top} more")
    lines.append("shards added: " + (", ".join(d["shards_added"]) or "none"))
    lines.append("shards removed: " + (", ".join(d["shards_removed"]) or "none"))
    lines.append("settings changed: " + ("none" if not d["settings_changed"] else ""))
    lines += [f"  {s['setting']}: {json.dumps(s['a'])} -> {json.dumps(s['b'])}" for s in d["settings_changed"][:top * 2]]
    if d["rows_changed"]:
        lines.append("rows kept/removed per D1 stage (b - a):")
        lines += [f"  {r['stage']} {r['source']} {r['reason']}: {r['a']} -> {r['b']} ({r['delta']:+})" for r in d["rows_changed"][:top * 2]]
    return "\n".join(lines)

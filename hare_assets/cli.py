"""`hare`: run the demo, query the catalog, open the UI, deduplicate files outside the graph."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hare_assets.lib.paths import PROJECT_ROOT, hare_home
from hare_assets.lib.profile import DedupConfig


def _instance():
    """The checkout's Dagster instance (dagster.yaml at the root, SQLite under .hare/dagster)."""
    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    os.chdir(os.environ["DAGSTER_HOME"])  # dagster.yaml's storage paths are relative to it
    instance = dg.DagsterInstance.get()
    if instance.event_log_storage.get_concurrency_info("gpu").slot_count != 1:
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
    return instance


def cmd_demo(args: argparse.Namespace) -> int:
    """Materialize the whole graph, partition by partition, recorded in the checkout's instance."""
    from hare_assets.defs.curate.partitions import TOPICS
    from hare_assets.defs.graph import (
        BUILD_TASKS_JOB,
        CURATE_CORPUS_JOB,
        CURATE_SOURCES_JOB,
        SYNTHESIZE_TOPIC_JOB,
        build_definitions,
    )
    from hare_assets.defs.synthesize.partitions import task_partitions
    from hare_assets.lib.profile import load_profile

    profile = load_profile(args.profile)
    defs = build_definitions(profile)
    instance = _instance()
    started = time.perf_counter()
    print(f"hare demo: profile {profile.name!r}, data under {hare_home()}")

    def run(job: str, partition: str | None = None) -> bool:
        result = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance, raise_on_error=False)
        _report(result, f"{job}[{partition}]" if partition else job)
        return result.success

    steps = [(CURATE_SOURCES_JOB, s.name) for s in profile.sources] + [(CURATE_CORPUS_JOB, None)]
    if not all(run(job, key) for job, key in steps):
        return 1
    steps = [(SYNTHESIZE_TOPIC_JOB, t) for t in instance.get_dynamic_partitions(TOPICS.name)]
    steps += [(BUILD_TASKS_JOB, t) for t in task_partitions(profile).get_partition_keys()]
    if not all(run(job, key) for job, key in steps):
        return 1
    print(f"done in {time.perf_counter() - started:.0f}s. Query: hare sql \"SELECT reason, count(*) FROM clean_documents__removed GROUP BY 1\"; browse: hare ui")
    return 0


def _report(result, name: str) -> None:
    status = "ok" if result.success else "FAILED"
    lines = [f"  {name}: {status}"]
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        partition = f"[{mat.partition}]" if mat.partition else ""
        accounting = mat.metadata.get("accounting")
        lines.append(f"    {mat.asset_key.to_user_string()}{partition}: {accounting.value if accounting else ''}")
    for event in result.all_events:
        if event.is_failure and event.event_specific_data is not None and getattr(event.event_specific_data, "error", None):
            lines.append(f"    error: {event.event_specific_data.error.message.strip()}")
    print("\n".join(lines))


def cmd_sql(args: argparse.Namespace) -> int:
    from hare_assets.lib.catalog import open_catalog
    from hare_assets.lib.storage import TableStore

    con = open_catalog(TableStore(hare_home()))
    if not args.query:
        tables = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
        print("\n".join(tables) if tables else f"no tables under {hare_home()} yet: run `hare demo`")
        return 0
    relation = con.sql(args.query)
    if relation is None:
        return 0
    if args.format == "json":
        columns = relation.columns
        for row in relation.fetchall():
            print(json.dumps(dict(zip(columns, row)), default=str, ensure_ascii=False))
    elif args.format == "csv":
        relation.pl().write_csv(sys.stdout)
    else:
        relation.show(max_rows=args.max_rows, max_width=200)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    _instance()  # creates storage and sets the gpu pool before the server starts
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {os.environ['DAGSTER_HOME']})")
    return subprocess.call(cmd, cwd=PROJECT_ROOT)


def cmd_dedup(args: argparse.Namespace) -> int:
    from hare_assets.lib.dedup_files import dedup_paths

    report = dedup_paths(
        [Path(p) for p in args.paths], text_field=args.text_field,
        columns=args.columns.split(",") if args.columns else None, ngram=args.ngram, num_perm=args.num_perm,
        threshold=args.threshold, bands=args.bands, rows=args.rows,
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"{report['documents']} documents in {report['files']} files; {report['duplicates_removed']} duplicates "
              f"({report['exact_duplicates']} exact, {report['near_duplicates']} near) in {len(report['clusters'])} pairs")
        for c in report["clusters"][: args.show]:
            k, r = c["kept"], c["removed"]
            print(f"  {r['file']}#{r['row']} -> kept {k['file']}#{k['row']} ({c['reason']}, similarity {c['similarity']:.2f})")
        if report["quarantined"]:
            print(f"{len(report['quarantined'])} unreadable records: " + ", ".join(f"{q['file']}#{q['row']} {q['reason']}" for q in report["quarantined"][:5]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hare", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="materialize the whole graph (default profile: demo)")
    demo.add_argument("--profile", help="profile name or YAML path (default: $HARE_PROFILE or demo)")
    demo.set_defaults(func=cmd_demo)

    sql = sub.add_parser("sql", help="query every materialized table with DuckDB SQL; no query lists the tables")
    sql.add_argument("query", nargs="?")
    sql.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sql.add_argument("--max-rows", type=int, default=40)
    sql.set_defaults(func=cmd_sql)

    ui = sub.add_parser("ui", help="start the Dagster web UI (dagster dev) with this checkout's instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    dd = sub.add_parser("dedup", help="exact + MinHash near-duplicate detection on files or folders (jsonl[.gz|.zst], parquet, txt, tsv, csv)")
    dd.add_argument("paths", nargs="+")
    dd.add_argument("--json", action="store_true", help="print one JSON object")
    dd.add_argument("--text-field", default="text")
    dd.add_argument("--columns", help="tsv/csv without a header line: comma-separated column names, e.g. text,label")
    defaults = DedupConfig()
    dd.add_argument("--ngram", type=int, default=defaults.ngram)
    dd.add_argument("--num-perm", type=int, default=defaults.num_perm)
    dd.add_argument("--threshold", type=float, default=defaults.threshold, help="exact Jaccard a near-duplicate must reach")
    dd.add_argument("--bands", type=int, default=defaults.bands, help="with --rows; 0 lets text-dedup's optimal_param choose")
    dd.add_argument("--rows", type=int, default=defaults.rows)
    dd.add_argument("--show", type=int, default=20, help="pairs to list without --json")
    dd.set_defaults(func=cmd_dedup)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # the CLI prints what to do, not a traceback
        from hare_assets.lib.profile import ProfileError

        if isinstance(exc, (ProfileError, FileNotFoundError)):
            print(f"hare: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

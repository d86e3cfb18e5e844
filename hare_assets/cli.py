"""`hare`: run the demo, query the catalog, open the UI, deduplicate files outside the graph."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from hare_assets.lib.paths import PROJECT_ROOT, hare_home
from hare_assets.lib.processes import supervise
from hare_assets.lib.profile import DedupConfig


def _home_dir() -> str:
    """DAGSTER_HOME (default: the checkout), made the working directory: dagster.yaml's storage paths are relative to it."""
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    os.chdir(os.environ["DAGSTER_HOME"])
    return os.environ["DAGSTER_HOME"]


# The terminal gets one summary line per asset (`_report`); the full event log is in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _quiet_libraries() -> None:
    """No progress bars from the libraries under our summary lines (transformers reads this when first imported)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _instance():
    """The checkout's Dagster instance (dagster.yaml at the root, SQLite under .hare/dagster)."""
    import dagster as dg

    _home_dir()
    instance = dg.DagsterInstance.get()
    if instance.event_log_storage.get_concurrency_info("gpu").slot_count != 1:
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
    return instance


def _end_dead_runs(instance) -> None:
    from hare_assets.defs.runs import end_dead_runs

    for line in end_dead_runs(instance):
        print(f"hare: {line}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    """Materialize the whole graph in a worker process that this one can always stop: Ctrl-C or SIGTERM
    marks the worker's run canceling, interrupts it, and after a short grace kills it and every job it
    started, then ends its runs and frees their pool slots."""
    import threading

    from hare_assets.lib.profile import load_profile

    load_profile(args.profile)  # a bad profile is a one-line message here, before any process starts
    _home_dir()
    worker = [sys.executable, "-m", "hare_assets.cli", "demo", "--worker"]
    worker += ["--profile", args.profile] if args.profile else []
    worker += ["--fresh"] if args.fresh else []
    # Dagster is needed here only to cancel runs on a signal: imported beside the worker's start-up, not before
    # it; the instance is opened when needed (the worker creates it).
    importer = threading.Thread(target=lambda: __import__("hare_assets.defs.runs"), daemon=True)
    importer.start()
    opened: dict = {}

    def runs_of(pid: int):
        import dagster as dg

        from hare_assets.defs.runs import ACTIVE, PID_TAG

        importer.join()
        if "instance" not in opened:
            opened["instance"] = dg.DagsterInstance.get()
        return opened["instance"].get_runs(dg.RunsFilter(statuses=ACTIVE, tags={PID_TAG: str(pid)}))

    def cancel(signum: int, pid: int) -> None:
        for run in runs_of(pid):
            opened["instance"].report_run_canceling(run, message=f"{signal.Signals(signum).name} received by hare demo")

    stopped: list[int] = []
    code = supervise(worker, on_signal=lambda signum, pid: (stopped.append(pid), cancel(signum, pid)))
    for pid in stopped:
        from hare_assets.defs.runs import end_run

        for run in runs_of(pid):
            freed = end_run(opened["instance"], run, "hare demo was stopped by a signal", canceled=True)
            print(f"hare: run {run.run_id[:8]} ({run.job_name}) canceled, {freed} pool slot(s) freed", file=sys.stderr)
    if code > 128:
        print("hare demo stopped; finished work is kept and `hare demo` resumes from it", file=sys.stderr)
    return code


def demo_worker(args: argparse.Namespace) -> int:
    """The demo itself: each job and partition in dependency order, skipping what an earlier run of the
    same plan finished (`--fresh`: everything), recorded in the checkout's instance."""
    _quiet_libraries()
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from dagster._core.utils import make_new_run_id

    from hare_assets.defs import graph
    from hare_assets.defs.curate.partitions import TOPICS
    from hare_assets.defs.ingest.partitions import BLOCKS
    from hare_assets.defs.resume import ResumeCheck, plan_fingerprint, plan_tags
    from hare_assets.defs.runs import PoolWatch, owner_tags
    from hare_assets.defs.synthesize.partitions import task_partitions
    from hare_assets.lib.lineage import BASELINE_STAGE
    from hare_assets.lib.profile import load_profile

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # outside a run, SIGTERM stops like Ctrl-C
    profile = load_profile(args.profile)
    defs = graph.build_definitions(profile)
    instance = _instance()
    _end_dead_runs(instance)
    started = time.perf_counter()
    home = hare_home()
    plan = plan_fingerprint(profile)
    resume = ResumeCheck(instance, defs, plan, home)
    tags = {**owner_tags(), **plan_tags(plan, home)}
    print(f"hare demo: profile {profile.name!r}, data under {home}")
    benchmarks = profile.integrity.benchmarks

    skipped: dict[str, int] = {}

    def run(job: str, partition: str | dg.MultiPartitionKey | list[str] | None = None) -> bool:
        """One run of `job`: unpartitioned, one partition, or every partition of a list (in the partitions'
        order) at once, so that generation batches span them."""
        job_def = defs.resolve_job_def(job)
        keys = sorted(job_def.asset_layer.executable_asset_keys, key=lambda k: k.to_user_string())
        parts = partition if isinstance(partition, list) else [partition]
        if not parts:
            return True
        todo = set(keys) if args.fresh else {k for p in parts for k in resume.pending(keys, str(p) if p else None)}
        pending = [k for k in keys if k in todo]
        if not pending:
            skipped[job] = skipped.get(job, 0) + 1
            return True
        run_id = make_new_run_id()
        run_tags, key, name = tags, parts[0], f"{job}[{parts[0]}]" if parts[0] else job
        if len(parts) > 1:
            run_tags, key = {**tags, ASSET_PARTITION_RANGE_START_TAG: parts[0], ASSET_PARTITION_RANGE_END_TAG: parts[-1]}, None
            name = f"{job}[{parts[0]} … {parts[-1]}]"
        with PoolWatch(instance, run_id, lambda line: print(f"  {line}", flush=True)):
            result = job_def.execute_in_process(partition_key=key, instance=instance, raise_on_error=False,
                                                run_config=QUIET, run_id=run_id, tags=run_tags,
                                                asset_selection=pending if len(pending) < len(keys) else None)
        _report(result, instance, name, time.perf_counter() - started)
        return result.success

    # In dependency order; block partitions exist once the manifest is written, topic partitions once clustered.
    blocks = lambda: sorted(instance.get_dynamic_partitions(BLOCKS.name))  # noqa: E731
    steps = [
        lambda: [(graph.SCAN_JOB, None)],
        lambda: [(graph.CURATE_BLOCK_JOB, b) for b in blocks()],
        lambda: [(graph.BENCHMARK_JOB, b) for b in benchmarks],
        lambda: [(graph.DEDUP_JOB, None)],
        lambda: [(graph.FINISH_BLOCK_JOB, b) for b in blocks()],
        lambda: [(graph.CLUSTER_JOB, None)],
        lambda: [(graph.SYNTHESIZE_TOPIC_JOB, instance.get_dynamic_partitions(TOPICS.name))],
        lambda: [(graph.BUILD_TASKS_JOB, task_partitions(profile).get_partition_keys())],
        lambda: [(graph.HITS_JOB, None), (graph.TRAIN_STAGE_JOB, "stage1"), (graph.TRAIN_STAGE_JOB, "stage2")],
        lambda: [(graph.EVALUATE_JOB, dg.MultiPartitionKey({"benchmark": b, "stage": st}))
                 for b in benchmarks for st in profile.evaluation.stages],
        lambda: [(graph.BASELINE_JOB, dg.MultiPartitionKey({"benchmark": b, BASELINE_STAGE: m.name}))
                 for b in benchmarks for m in profile.evaluation.baselines],
        lambda: [(graph.LEAKAGE_JOB, b) for b in benchmarks],
    ]
    for step in steps:
        if not all(run(job, key) for job, key in step()):
            return 1
    if skipped:
        print("done before by this plan, skipped: " + ", ".join(f"{job} x{n}" for job, n in skipped.items()))
    print(f"done in {time.perf_counter() - started:.0f}s. Next: hare explain {benchmarks[0]}; hare diff stage1 stage2; "
          "hare sql \"SELECT * FROM contamination_hits\"; hare ui")
    return 0


_SUMMARY = ("dagster/row_count", "items", "tokens", "blocks", "checkpoint_id", "final_loss", "tokens_per_s", "score", "contaminated_items",
            "documents", "removed_documents", "excised_documents", "documents_excised", "delta_test")


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _report(result, instance, name: str, elapsed: float) -> None:
    """One status line per run, one summary line per materialization, and one line for each warning the
    assets logged and for each failure (its root cause, not a traceback); the full log is in the UI."""
    import logging

    from dagster._core.errors import DagsterExecutionInterruptedError

    status = "ok" if result.success else "FAILED"
    lines = [f"  [{elapsed:5.0f}s] {name}: {status}"]
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        partition = f"[{mat.partition}]" if mat.partition else ""
        accounting = mat.metadata.get(f"{mat.partition}/accounting") or mat.metadata.get("accounting")  # a run of several: its own
        shown = accounting.value if accounting else ", ".join(
            f"{k} {_short(mat.metadata[k].value)}" for k in _SUMMARY if k in mat.metadata)
        lines.append(f"    {mat.asset_key.to_user_string()}{partition}: {shown}")
    failures, interrupted = [], False
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_step_failure else None
        if error is not None:
            while error.cause is not None and error.cls_name.startswith("Dagster"):  # the user's exception, not Dagster's wrapper
                error = error.cause
            kind, _, text = error.message.strip().partition(": ")
            if error.cls_name == DagsterExecutionInterruptedError.__name__:
                interrupted, text = True, "interrupted (Ctrl-C or SIGTERM)"
            failures.append(f"    {event.step_key}: {text if kind.endswith(error.cls_name) or interrupted else error.message.strip()}")
    for entry in instance.all_logs(result.run_id):
        if entry.dagster_event is None and entry.level >= logging.WARNING:
            if interrupted and entry.user_message.startswith("[pipes] did not receive closed message"):
                continue  # the job was stopped on purpose
            lines.append(f"    {logging.getLevelName(entry.level).lower()}: {entry.user_message}")
    lines += failures
    print("\n".join(lines), flush=True)


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
    """`dagster dev` in its own session: SIGTERM or Ctrl-C stops it and, after a short grace, every
    process it started (webserver, daemon, code servers, run workers)."""
    instance = _instance()  # creates storage and sets the gpu pool before the server starts
    _end_dead_runs(instance)
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {os.environ['DAGSTER_HOME']})", flush=True)
    return supervise(cmd, cwd=os.environ["DAGSTER_HOME"])  # dagster.yaml's storage paths are relative to it


def cmd_runs(args: argparse.Namespace) -> int:
    """Runs in progress, whether their process is alive, and the pool slots they hold; `--end` ends one."""
    from hare_assets.defs.runs import active_runs, end_run, slot_waits
    from hare_assets.lib.processes import stop_tree

    instance = _instance()
    found = active_runs(instance)
    if args.end:
        matches = [f for f in found if f.run.run_id.startswith(args.end)]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} runs in progress match {args.end!r}: give more of the id (`hare runs` lists them)")
        target = matches[0]
        if target.alive and target.process and target.process.local:
            stop_tree(target.process.pid)
        freed = end_run(instance, target.run, "ended with `hare runs --end`", canceled=True)
        print(f"{target.label}: canceled, {freed} pool slot(s) freed")
        return 0
    if not found:
        print("no run in progress")
    for f in found:
        state = {True: "alive", False: "process gone (the next hare demo/ui ends it)", None: "process not checkable from here"}[f.alive]
        pid = f"pid {f.process.pid}" if f.process else "pid unknown"
        print(f"{f.label}: {f.run.status.value.lower()}, {pid}, {state}")
    for _, _, message in slot_waits(instance):
        print(message)
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from hare_assets.lib.dedup_files import dedup_paths

    report = dedup_paths(
        [Path(p) for p in args.paths], text_field=args.text_field,
        columns=args.columns.split(",") if args.columns else None, ngram=args.ngram, num_perm=args.num_perm,
        threshold=args.threshold, bands=args.bands, rows=args.rows, memory_limit=args.memory_limit,
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


def cmd_explain(args: argparse.Namespace) -> int:
    """From a benchmark score back to checkpoints, mixture, datasets, topics and source shards."""
    from hare_assets.lib.lineage import explain, render_explain
    from hare_assets.lib.storage import TableStore

    facts = explain(TableStore(hare_home()), args.benchmark, args.checkpoint)
    print(json.dumps(facts, default=str, ensure_ascii=False) if args.json else render_explain(facts))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """What changed between two evaluated checkpoints: scores, and the data and settings behind them."""
    from hare_assets.lib.lineage import continued_from, diff, render_diff
    from hare_assets.lib.storage import TableStore

    tables = TableStore(hare_home())
    a, b = (args.a, args.b) if args.b else (continued_from(tables, args.a), args.a)
    result = diff(tables, a, b)
    if not args.b and not args.json:
        print(f"{result['b']['checkpoint_id']} continued {result['a']['checkpoint_id']} on new data; what changed:")
    print(json.dumps(result, default=str, ensure_ascii=False) if args.json else render_diff(result))
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    """Benchmark-leakage scan of files: exit 1 when a document reaches the rule."""
    from hare_assets.lib.decontam import DecontamRule
    from hare_assets.lib.scan_files import format_report, scan_paths

    rule = DecontamRule(n=args.n, rate="strict" if args.strict else args.rate, threshold=args.threshold,
                        min_item_share=None if args.min_item_share <= 0 else args.min_item_share)
    report = scan_paths(
        args.paths, benchmarks_dir=args.benchmarks, rule=rule, text_field=args.text_field,
        columns=args.columns.split(",") if args.columns else None, benchmarks=args.benchmark or None, worst=args.worst,
    )
    print(json.dumps(report, ensure_ascii=False) if args.json else format_report(report))
    return 1 if report["documents_flagged"] else 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """One of the profile's baselines scored on each of its benchmarks through the graph (benchmark_sets, then
    baseline_scores), in this checkout's instance and HARE_HOME."""
    _quiet_libraries()
    import dagster as dg
    import polars as pl

    from hare_assets.defs import graph
    from hare_assets.defs.integrity.assets import BENCHMARK_SETS
    from hare_assets.lib.lineage import BASELINE_STAGE, SCORES
    from hare_assets.lib.profile import load_profile
    from hare_assets.lib.storage import TableStore

    profile = load_profile(args.profile)
    names = [b.name for b in profile.evaluation.baselines]
    if args.name not in names:
        print(f"hare: profile {profile.name!r} has no baseline {args.name!r} (evaluation.baselines: {names or 'none'})", file=sys.stderr)
        return 2
    unknown = sorted(set(args.benchmark or ()) - set(profile.integrity.benchmarks))
    if unknown:
        print(f"hare: {unknown} are not among profile {profile.name!r}'s benchmarks {profile.integrity.benchmarks}", file=sys.stderr)
        return 2
    defs = graph.build_definitions(profile)
    instance = _instance()
    started = time.perf_counter()
    for benchmark in args.benchmark or profile.integrity.benchmarks:
        for job, key, selection in ((graph.BENCHMARK_JOB, benchmark, [dg.AssetKey(BENCHMARK_SETS)]),
                                    (graph.BASELINE_JOB, dg.MultiPartitionKey({"benchmark": benchmark, BASELINE_STAGE: args.name}), None)):
            result = defs.resolve_job_def(job).execute_in_process(partition_key=key, instance=instance, raise_on_error=False,
                                                                 run_config=QUIET, asset_selection=selection)
            _report(result, instance, f"{job}[{key}]", time.perf_counter() - started)
            if not result.success:
                return 1
    tables = TableStore(hare_home())
    rows = pl.concat([tables.read(SCORES, f"{b}__{args.name}") for b in profile.integrity.benchmarks
                      if tables.exists(SCORES, f"{b}__{args.name}")])
    print(rows.filter(pl.col("subset") == "all").select("benchmark", "metric", pl.col("value").round(4), pl.col("stderr").round(4), "n"))
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from hare_assets.lib.generation.models import local_weights
    from hare_assets.lib.paths import models_dir

    print(local_weights(args.model, models_dir(), lambda line: print(f"hare: {line}", file=sys.stderr)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hare", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="materialize the whole graph (default profile: demo)")
    demo.add_argument("--profile", help="profile name or YAML path (default: $HARE_PROFILE or demo)")
    demo.add_argument("--fresh", action="store_true", help="recompute every asset, even those an earlier run of the same plan finished")
    demo.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # the supervised process that does the work
    demo.set_defaults(func=lambda a: demo_worker(a) if a.worker else cmd_demo(a))

    runs = sub.add_parser("runs", help="runs in progress: process alive or gone, pool slots held, steps waiting")
    runs.add_argument("--end", metavar="RUN_ID", help="end this run (id or prefix): stop its process, mark it canceled, free its slots")
    runs.set_defaults(func=cmd_runs)

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
    dd.add_argument("--memory-limit", default=defaults.memory_limit, help="DuckDB's memory limit for the decision; it spills beyond it")
    dd.add_argument("--show", type=int, default=20, help="pairs to list without --json")
    dd.set_defaults(func=cmd_dedup)

    ex = sub.add_parser("explain", help="trace a benchmark score back to its checkpoint, mixture, topics and source shards")
    ex.add_argument("benchmark")
    ex.add_argument("--checkpoint", help="checkpoint id (or prefix), stage name (newest) or stage~N; default: the newest evaluated")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explain)

    df = sub.add_parser("diff", help="compare two checkpoints: score deltas and what changed in the data behind them; "
                                     "one checkpoint that continued another (training.on_new_data: continue): the data it added")
    df.add_argument("a", help="checkpoint id (or prefix), stage name (newest) or stage~N (N before the newest)")
    df.add_argument("b", nargs="?", help="the other checkpoint; left out: the one `a` continued from")
    df.add_argument("--json", action="store_true")
    df.set_defaults(func=cmd_diff)

    bl = sub.add_parser("baseline", help="score one of the profile's evaluation.baselines on each of its benchmarks "
                                         "(benchmark_sets, then baseline_scores) and print the scores")
    bl.add_argument("name", help="the baseline's name in the profile")
    bl.add_argument("--profile", default="demo")
    bl.add_argument("--benchmark", action="append", help="only this benchmark of the profile (repeatable)")
    bl.set_defaults(func=cmd_baseline)

    mo = sub.add_parser("model", help="prepare a model for the local generator and print the directory it loads from "
                                      "(a GGUF or a packaged model such as smollm2-135m-instruct is converted once)")
    mo.add_argument("model", help="a packaged model's name, a .gguf file, an HF directory or a hub id")
    mo.set_defaults(func=cmd_model)

    sc = sub.add_parser("scan", help="scan files or folders for benchmark leakage (exit 1 when contamination reaches the rule)")
    sc.add_argument("paths", nargs="+")
    sc.add_argument("--benchmarks", metavar="DIR",
                    help="benchmark files laid out like ../shared/data/benchmarks (default: $HARE_BENCHMARKS_DIR, else the HF hub)")
    sc.add_argument("--benchmark", action="append", help="only this registry benchmark (repeatable; default: the six leaderboard sets)")
    sc.add_argument("--json", action="store_true", help="print one JSON object")
    sc.add_argument("--n", type=int, default=13, help="word n-gram size (HARE: 10-15 for documents, 4-8 for short task text)")
    sc.add_argument("--rate", choices=["coverage", "positions", "strict"], default="coverage")
    sc.add_argument("--threshold", type=float, default=0.5, help="flag a document whose rate reaches this")
    sc.add_argument("--min-item-share", type=float, default=0.8,
                    help="also flag a document holding this share of one benchmark item (0 turns it off)")
    sc.add_argument("--strict", action="store_true", help="any verified n-gram hit flags the document")
    sc.add_argument("--text-field", default="text")
    sc.add_argument("--columns", help="tsv/csv without a header line: comma-separated column names")
    sc.add_argument("--worst", type=int, default=10, help="documents listed in the report")
    sc.set_defaults(func=cmd_scan)

    args = parser.parse_args(argv)
    import warnings

    import dagster as dg

    for category in (dg.PreviewWarning, dg.BetaWarning):  # Pipes and partition mappings we rely on, flagged as pre-GA
        warnings.filterwarnings("ignore", category=category)
    try:
        return args.func(args)
    except Exception as exc:  # the CLI prints what to do, not a traceback
        from hare_assets.lib.profile import ProfileError

        if isinstance(exc, (ProfileError, FileNotFoundError, ValueError, LookupError)):
            print(f"hare: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

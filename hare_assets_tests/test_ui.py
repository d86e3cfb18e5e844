"""The Dagster web UI end to end: `dagster dev` as `hare ui` runs it, driven in headless Chromium.

The server runs on a free loopback port with its own DAGSTER_HOME (the checkout's dagster.yaml),
HARE_HOME and HARE_CACHE. The browser checks that the asset graph loads, then materializes the
`news-00000` block of `raw_documents` through the asset page's Materialize dialog, the way a
person would. The run and the materialization are then checked in the Dagster instance and on
disk, and the asset page must show the new materialization.

Screenshots (and the server log) go to test-artifacts/ui/ at the repo root: graph.png,
launch-dialog.png, materialized.png, and failure.png with failure.html when a step fails.

Needs Debian's Chromium (`apt-get install -y chromium`) and the `playwright` package (the dev
extra). Playwright drives /usr/bin/chromium; it never downloads a browser of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hare_assets.lib.paths import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium reaches for the network (updates, sync, QUIC), which this closed network refuses.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
SERVER_START_TIMEOUT_S = 150  # the code location alone takes 10-20 s to load on 2 cores
UI_TIMEOUT_MS = 60_000  # one wait on one selector
RUN_TIMEOUT_S = 150  # queued -> dequeued by the daemon -> run subprocess -> success
ASSET = "raw_documents"
PARTITION = "news-00000"
GRAPH_ASSETS = ("raw_documents", "clean_documents", "deduplicated_documents")

LOCATIONS_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } }
    ... on PythonError { message } } }
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def _graphql(base: str, query: str, raw: bool = False) -> dict:
    """POST a query (or, with `raw`, a whole JSON body with variables) to the webserver's GraphQL endpoint."""
    request = urllib.request.Request(
        f"{base}/graphql", data=(query if raw else json.dumps({"query": query})).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _wait_until_served(proc: subprocess.Popen, base: str, log: Path) -> None:
    """Until the webserver answers and the code location has loaded; a load error fails at once."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode} before serving:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5) as response:
                response.read()
            workspace = _graphql(base, LOCATIONS_QUERY)["data"]["workspaceOrError"]
            if workspace["__typename"] != "Workspace":
                pytest.fail(f"workspace failed to load: {workspace}")
            entries = workspace["locationEntries"]
            for entry in entries:
                error = entry["locationOrLoadError"]
                if error and error["__typename"] == "PythonError":
                    pytest.fail(f"code location {entry['name']} failed to load:\n{error['message']}")
            if entries and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries):
                return
            last = f"locations: {[(e['name'], e['loadStatus']) for e in entries]}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"dagster dev did not serve {base} within {SERVER_START_TIMEOUT_S}s ({last}):\n{_log_tail(log)}")


def _stop(proc: subprocess.Popen) -> None:
    """End the whole process group: webserver, daemon, code servers and any run it launched.

    SIGINT is what Ctrl-C sends `dagster dev`; it ignores SIGTERM for long enough to matter.
    """
    for sig, grace in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no member of its group outlives it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break


@pytest.fixture
def dagster_ui(tmp_path: Path):
    """`dagster dev` on a free port with a fresh instance, as `hare ui` starts it; yields (url, home, data)."""
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = dict(
        os.environ, DAGSTER_HOME=str(home), HARE_HOME=str(data), HARE_CACHE=str(tmp_path / "cache"),
        HARE_PROFILE="demo", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dagster-dev.log"
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
           "-h", "127.0.0.1", "-p", str(port)]
    # cwd is DAGSTER_HOME: dagster.yaml's storage paths are relative (.hare/dagster/...).
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_served(proc, base, log)
        yield base, home, data
    finally:
        _stop(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if log.exists():
            shutil.copy(log, ARTIFACTS / "dagster-dev.log")


@pytest.fixture
def playwright_api():
    """Playwright and Debian's Chromium, checked before the server starts: missing is a failure, not a skip."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium first (apt-get install -y chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[dev]' (it drives /usr/bin/chromium)")
    return sync_playwright, expect


def _wait_for_run(instance, timeout_s: float):
    """The runs that the UI launched (they have a partition), once they have finished."""
    import dagster as dg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = [r for r in instance.get_runs() if r.tags.get("dagster/partition")]
        if runs and all(r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                                     dg.DagsterRunStatus.CANCELED) for r in runs):
            return runs
        time.sleep(0.5)
    pytest.fail(f"no finished run after {timeout_s}s: {[(r.run_id, r.status) for r in instance.get_runs()]}")


@pytest.mark.timeout(300)
def test_ui_loads_the_graph_and_materializes_one_partition(playwright_api, dagster_ui, tmp_path, monkeypatch):
    import dagster as dg

    from hare_assets.defs.graph import build_definitions
    from hare_assets.lib.profile import load_profile

    sync_playwright, expect = playwright_api
    base, home, data = dagster_ui
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ("graph.png", "launch-dialog.png", "materialized.png", "failure.png", "failure.html"):
        (ARTIFACTS / stale).unlink(missing_ok=True)

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        # Dismiss the "Join the Dagster community" dialog that localhost gets on first visit.
        context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        monkeypatch.chdir(home)  # dagster.yaml's storage paths are relative to DAGSTER_HOME
        monkeypatch.setenv("HARE_HOME", str(data))
        with dg.DagsterInstance.from_config(str(home)) as instance:  # the manifest registers the demo's six blocks
            ui_defs = build_definitions(load_profile("demo"))
            assert dg.materialize(list(ui_defs.assets), selection=["shard_manifest"], resources=dict(ui_defs.resources),
                                  instance=instance).success
        try:
            # 1. The asset graph: raw_documents and two levels downstream, laid out with their groups.
            page.goto(f"{base}/assets/{ASSET}?view=lineage&lineageScope=downstream&lineageDepth=2")
            graph = page.locator("svg foreignObject")
            for name in GRAPH_ASSETS:
                expect(graph.get_by_text(name, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(graph.get_by_text("6 partitions").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(graph.get_by_text(re.compile(r"^Loading"))).to_have_count(0, timeout=UI_TIMEOUT_MS)
            page.screenshot(path=ARTIFACTS / "graph.png")

            # 2. The asset page: Materialize… opens the partition dialog; pick one partition and launch.
            page.get_by_role("tab", name="Overview").click()
            expect(page.get_by_text("Never materialized")).to_be_visible(timeout=UI_TIMEOUT_MS)
            page.get_by_role("button", name=re.compile(r"Materialize(…|\.\.\.)$")).click()
            dialog = page.get_by_role("dialog").filter(has_text=f"Launch runs to materialize {ASSET}")
            expect(dialog).to_be_visible(timeout=UI_TIMEOUT_MS)
            dialog.get_by_text("Select a partition").click()
            page.get_by_placeholder("Filter partitions").fill(PARTITION)
            page.get_by_role("menuitem", name=re.compile(rf"^{PARTITION}\b")).click()
            # Close the partition list by clicking the dialog's title, then check what will run.
            dialog.get_by_text(f"Launch runs to materialize {ASSET}").click()
            expect(page.get_by_placeholder("Filter partitions")).to_be_hidden(timeout=UI_TIMEOUT_MS)
            expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
            launch = dialog.get_by_role("button", name="Launch 1 run")
            expect(launch).to_be_enabled(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=ARTIFACTS / "launch-dialog.png")
            launch.click()
            toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
            expect(toast).to_be_visible(timeout=UI_TIMEOUT_MS)
            short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)

            # 3. The instance: exactly one run, for that partition, succeeded and materialized it.
            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = _wait_for_run(instance, RUN_TIMEOUT_S)
                assert len(runs) == 1, [(r.run_id, r.tags) for r in runs]
                run = runs[0]
                assert run.run_id.startswith(short_id)
                assert run.status == dg.DagsterRunStatus.SUCCESS, f"run {run.run_id} ended {run.status}"
                assert run.tags.get("dagster/partition") == PARTITION
                assert instance.get_materialized_partitions(dg.AssetKey(ASSET)) == {PARTITION}
                event = instance.get_latest_materialization_event(dg.AssetKey(ASSET))
                assert event.asset_materialization.partition == PARTITION
            assert (data / ASSET / PARTITION / "_manifest.json").is_file()

            # 4. The asset page shows it: the latest materialization links to the partition.
            page.goto(f"{base}/assets/{ASSET}")
            expect(page.locator(f'a[href*="partition={PARTITION}"]').first).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text("Never materialized")).to_be_hidden(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=ARTIFACTS / "materialized.png")
        except BaseException:
            try:
                page.screenshot(path=ARTIFACTS / "failure.png")
                (ARTIFACTS / "failure.html").write_text(page.content())
            except Exception as exc:  # the original failure matters more than the screenshot's
                print(f"could not save the failure screenshot: {exc!r}")
            raise
        finally:
            context.close()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_hare_ui_ends_dagster_dev_and_every_child_on_a_signal(signum, tmp_path):
    """`hare ui` as a user starts it; SIGTERM (a service manager) or SIGINT (Ctrl-C) ends it and every
    process under it (webserver, daemon, code servers) within 10 s."""
    import psutil

    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path), HARE_HOME=str(tmp_path / "data"), HARE_CACHE=str(tmp_path / "cache"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    port = _free_port()
    log = tmp_path / "hare-ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hare_assets.cli", "ui", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_served(proc, f"http://127.0.0.1:{port}", log)
        members = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(members) >= 4, f"hare, dagster dev, webserver, daemon, code server: {[p.cmdline()[:4] for p in members]}"
        sent = time.monotonic()
        os.kill(proc.pid, signum)
        assert proc.wait(timeout=15) == 128 + signum
        _, alive = psutil.wait_procs(members, timeout=max(0.1, 10 - (time.monotonic() - sent)))
        assert not alive, f"still running 10 s after {signal.Signals(signum).name}: {[p.pid for p in alive]}\n{_log_tail(log)}"
    finally:
        _stop(proc)


BACKFILL_MUTATION = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on InvalidSubsetError { message } } }
"""


def _most_at_once(records) -> int:
    """The most runs in progress at the same moment, from their start and end times."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_backfill_of_blocks_runs_one_run_per_block_under_the_run_limit(dagster_ui, monkeypatch):
    """The daemon turns a backfill of three blocks into three runs and starts at most dagster.yaml's backfill limit at once."""
    import dagster as dg
    import yaml

    from hare_assets.defs.graph import build_definitions
    from hare_assets.lib.profile import load_profile

    base, home, data = dagster_ui
    limit = next(t["limit"] for t in yaml.safe_load((home / "dagster.yaml").read_text())["concurrency"]["runs"]
                 ["tag_concurrency_limits"] if t["key"] == "dagster/backfill")
    monkeypatch.chdir(home)
    monkeypatch.setenv("HARE_HOME", str(data))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        defs = build_definitions(load_profile("demo"))
        assert dg.materialize(list(defs.assets), selection=["shard_manifest"], resources=dict(defs.resources),
                              instance=instance).success
        blocks = sorted(instance.get_dynamic_partitions("blocks"))[:3]
    reply = _graphql(base, json.dumps({"query": BACKFILL_MUTATION, "variables": {"params": {
        "partitionNames": blocks, "assetSelection": [{"path": [ASSET]}], "title": "three blocks"}}}), raw=True)
    launched = reply["data"]["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline = time.monotonic() + 360
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            if len(records) == len(blocks) and all(r.dagster_run.is_finished for r in records):
                break
            time.sleep(1)
        else:
            pytest.fail(f"backfill {backfill_id} did not finish: {[(r.dagster_run.tags, r.dagster_run.status) for r in records]}")
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == blocks  # one run per block
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        assert 1 <= _most_at_once(records) <= limit
        assert instance.get_materialized_partitions(dg.AssetKey(ASSET)) == set(blocks)

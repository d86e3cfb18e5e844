"""shard_manifest and raw_documents through Dagster: bad records are quarantined and counted, the block still
succeeds; a killed block resumes at its first unfinished shard; a full disk keeps every committed block."""

import gzip
import json

import dagster as dg

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore


def test_bad_input_partition_materializes_with_quarantine(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    good = "\n".join(json.dumps({"text": f"Document {i} talks about the weather and the harbour."}) for i in range(5))
    (data / "a.jsonl").write_bytes(good.encode() + b"\n{broken\n" + b'{"text": "bad \xff"}\n' + b'{"text": 7}\n')
    blob = gzip.compress(good.encode() + b"\n")
    (data / "b.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "p.yaml").write_text(
        "name: bad\nsources:\n  - {name: mixed, format: jsonl, path: data}\n  - {name: gz, format: jsonl.gz, path: data}\n"
    )
    profile = load_profile(tmp_path / "p.yaml")
    defs = build_definitions(profile, home=str(tmp_path / "home"))
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(list(defs.assets), selection=["shard_manifest"], resources=dict(defs.resources), instance=instance).success
    assert instance.get_dynamic_partitions("blocks") == ["gz-00000", "mixed-00000"]
    for block in ("mixed-00000", "gz-00000"):
        result = dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key=block,
                                resources=dict(defs.resources), instance=instance)
        assert result.success
        [check] = result.get_asset_check_evaluations()
        assert check.passed, check.description
    store = TableStore(str(tmp_path / "home"))
    quarantine = store.read("raw_documents__quarantine", "mixed-00000")
    assert sorted(quarantine["reason"]) == ["invalid_json", "invalid_utf8", "non_string_text"]
    assert store.num_rows("raw_documents", "mixed-00000") == 5
    assert store.read("raw_documents__quarantine", "gz-00000")["reason"].to_list() == ["truncated_or_corrupt_stream"]
    [mat] = [e.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["rows_quarantined"].value == 1
    assert mat.metadata["quarantine"].records[0].data["reason"] == "truncated_or_corrupt_stream"


def test_missing_source_path_fails_with_a_clear_message(tmp_path):
    (tmp_path / "p.yaml").write_text("name: x\nsources: [{name: gone, format: jsonl, path: nowhere}]\n")
    defs = build_definitions(load_profile(tmp_path / "p.yaml"), home=str(tmp_path / "home"))
    result = dg.materialize(list(defs.assets), selection=["shard_manifest"], resources=dict(defs.resources), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "source 'gone': path" in failure.step_failure_data.error.to_string()


# Materializes raw_documents[news-00000] of the demo profile (registered, not yet ingested) under a file-size limit
# and prints the step's error.
_LIMITED_MATERIALIZE = """
import resource, sys, dagster as dg
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
defs = build_definitions(load_profile("demo"), home=sys.argv[1])
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions("blocks", ["news-00000"])
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
result = dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key="news-00000", resources=dict(defs.resources),
                        raise_on_error=False, instance=instance)
[failure] = [e for e in result.all_events if e.is_step_failure]
error = failure.step_failure_data.error
while error.cause is not None and error.cls_name.startswith("Dagster"):  # Dagster's wrapper around the asset's error
    error = error.cause
print(error.cls_name, error.message.strip())
"""


def test_a_full_disk_fails_the_step_and_keeps_every_committed_block(tmp_path):
    import subprocess
    import sys

    home = tmp_path / "home"
    defs = build_definitions(load_profile("demo"), home=str(home))
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(list(defs.assets), selection=["shard_manifest"], resources=dict(defs.resources), instance=instance).success
    for block in ("books-00000", "books-00001"):
        assert dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key=block,
                              resources=dict(defs.resources), instance=instance).success
    before = {p: p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}
    proc = subprocess.run([sys.executable, "-c", _LIMITED_MATERIALIZE, str(home), "20000"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(f"OutOfSpaceError hare_assets.lib.diskspace.OutOfSpaceError: cannot write {home}/raw_documents"), line
    assert "/news-00000/news.tsv-" in line, line
    assert "the file size limit (ulimit -f) was reached" in line, line
    after = {p: p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}
    assert {p: b for p, b in after.items() if "news-00000" not in str(p)} == before
    assert not [p for p in after if "news-00000" in str(p)]  # no half part, no receipt, no manifest


_KILLED_BLOCK = """
import sys, dagster as dg
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
defs = build_definitions(load_profile(sys.argv[1]), home=sys.argv[2])
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions("blocks", ["web-00000"])  # as the sensor registers a new block before its run
dg.materialize(list(defs.assets), selection=["shard_manifest", "raw_documents"], partition_key="web-00000",
               resources=dict(defs.resources), instance=instance)
"""


def test_kill_9_mid_block_then_a_rerun_reads_only_the_unfinished_shards(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"part-{i}.jsonl").write_text("".join(
            json.dumps({"text": f"Shard {i} line {j} says the harbour was calm."}) + "\n" for j in range(50)))
    (tmp_path / "p.yaml").write_text("name: k\ningest: {workers: 1}\nsources: [{name: web, format: jsonl, path: data}]\n")
    home = tmp_path / "home"
    env = {**os.environ, "HARE_FAILPOINT": "shard_done", "HARE_FAILPOINT_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BLOCK, str(tmp_path / "p.yaml"), str(home)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "shard_done").exists():  # the first shard has its receipt
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert TableStore(str(home)).committed("raw_documents", "web-00000") is None  # the block is not done
    (data / "part-0.jsonl").unlink()  # a rerun that read the finished shard again would quarantine it

    defs = build_definitions(load_profile(tmp_path / "p.yaml"), home=str(home))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("blocks", ["web-00000"])
    result = dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key="web-00000",
                            resources=dict(defs.resources), instance=instance)
    [mat] = [e.materialization for e in result.get_asset_materialization_events()]
    assert (mat.metadata["shards_read"].value, mat.metadata["shards_skipped"].value) == (3, 1)
    store = TableStore(str(home))
    assert store.num_rows("raw_documents", "web-00000") == 200 and store.num_rows("raw_documents__quarantine", "web-00000") == 0
    assert sorted(store.read("raw_documents", "web-00000")["shard"].unique()) == [f"part-{i}.jsonl" for i in range(4)]

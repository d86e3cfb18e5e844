"""raw_documents through Dagster: bad records are quarantined and counted, the partition still succeeds."""

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
    for source in ("mixed", "gz"):
        result = dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key=source,
                                resources=dict(defs.resources))
        assert result.success
        [check] = result.get_asset_check_evaluations()
        assert check.passed, check.description
    store = TableStore(str(tmp_path / "home"))
    quarantine = store.read("raw_documents__quarantine", "mixed")
    assert sorted(quarantine["reason"]) == ["invalid_json", "invalid_utf8", "non_string_text"]
    assert store.num_rows("raw_documents", "mixed") == 5
    assert store.read("raw_documents__quarantine", "gz")["reason"].to_list() == ["truncated_or_corrupt_stream"]
    [mat] = [e.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["rows_quarantined"].value == 1
    assert mat.metadata["quarantine"].records[0].data["reason"] == "truncated_or_corrupt_stream"


def test_missing_source_path_fails_with_a_clear_message(tmp_path):
    (tmp_path / "p.yaml").write_text("name: x\nsources: [{name: gone, format: jsonl, path: nowhere}]\n")
    defs = build_definitions(load_profile(tmp_path / "p.yaml"), home=str(tmp_path / "home"))
    result = dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key="gone",
                            resources=dict(defs.resources), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "source 'gone': path" in failure.step_failure_data.error.to_string()


# Materializes raw_documents[books] of the demo profile again under a file-size limit and prints the step's error.
_LIMITED_MATERIALIZE = """
import resource, sys, dagster as dg
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
defs = build_definitions(load_profile("demo"), home=sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
result = dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key="books", resources=dict(defs.resources),
                        raise_on_error=False)
[failure] = [e for e in result.all_events if e.is_step_failure]
error = failure.step_failure_data.error
while error.cause is not None and error.cls_name.startswith("Dagster"):  # Dagster's wrapper around the asset's error
    error = error.cause
print(error.cls_name, error.message.strip())
"""


def test_a_full_disk_fails_the_step_and_keeps_every_partition(tmp_path):
    import subprocess
    import sys

    home = str(tmp_path / "home")
    defs = build_definitions(load_profile("demo"), home=home)
    for source in ("books", "news"):
        assert dg.materialize(list(defs.assets), selection=["raw_documents"], partition_key=source,
                              resources=dict(defs.resources)).success
    files = sorted((tmp_path / "home").rglob("*.parquet"))
    before = {p: p.read_bytes() for p in files}
    books = tmp_path / "home" / "raw_documents" / "books.parquet"
    limit = books.stat().st_size // 2
    proc = subprocess.run([sys.executable, "-c", _LIMITED_MATERIALIZE, home, str(limit)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(f"OutOfSpaceError hare_assets.lib.diskspace.OutOfSpaceError: cannot write {books}: the file size limit (ulimit -f) was reached (needs about "), line
    assert int(line.split("needs about ")[1].split(" bytes")[0].replace(",", "")) == books.stat().st_size  # same content, same bytes
    assert {p: p.read_bytes() for p in sorted((tmp_path / "home").rglob("*.parquet"))} == before

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from hare_assets.lib.catalog import open_catalog
from hare_assets.lib.storage import TableStore


def test_roundtrip_partitions_and_empty_tables(tmp_path):
    store = TableStore(str(tmp_path))
    store.write("t", pl.DataFrame({"a": [1, 2]}), "p1")
    store.write("t", pl.DataFrame({"a": [3]}), "p2")
    store.write("empty", pl.DataFrame(schema={"a": pl.Int64}))
    assert store.partitions("t") == ["p1", "p2"]
    assert store.read("t", "p2")["a"].to_list() == [3]
    assert store.num_rows("empty") == 0 and store.read("empty").schema == {"a": pl.Int64}
    assert store.tables() == ["empty", "t"]
    with pytest.raises(FileNotFoundError, match="has not been materialized"):
        store.read("t", "p3")


def test_fsspec_url_goes_through_the_same_code_path():
    store = TableStore("memory://hare-test")
    store.write("docs", pl.DataFrame({"text": ["x"]}), "s")
    assert store.read("docs", "s")["text"].to_list() == ["x"]
    assert store.url("docs", "s") == "memory:///hare-test/docs/s.parquet"


_WRITER = """
import os, sys, polars as pl
from hare_assets.lib.storage import TableStore
frame = pl.DataFrame({"text": [os.urandom(400).hex() for _ in range(250_000)], "n": list(range(250_000))})
print("ready", flush=True)
TableStore(sys.argv[1]).write("docs", frame, "s")  # ~200 MB that zstd cannot shrink much: a write long enough to land in
"""


def test_kill_during_write_leaves_previous_parquet_intact(tmp_path):
    store = TableStore(str(tmp_path))
    store.write("docs", pl.DataFrame({"text": ["previous"], "n": [0]}), "s")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 120
    while not list((tmp_path / "docs").glob("s.parquet.tmp-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.001)  # wait until the write is in flight
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((tmp_path / "docs").glob("s.parquet.tmp-*")), "the kill must land while the write is in flight"
    frame = store.read("docs", "s")
    assert frame.to_dicts() == [{"text": "previous", "n": 0}]
    assert store.partitions("docs") == ["s"]  # the half-written temporary file is not a partition


def test_catalog_views_over_partitions(tmp_path):
    store = TableStore(str(tmp_path))
    store.write("clean_documents", pl.DataFrame({"source": ["a"], "n": [1]}), "a")
    store.write("clean_documents", pl.DataFrame({"source": ["b"], "n": [2]}), "b")
    con = open_catalog(store)
    assert con.execute("SELECT source, n FROM clean_documents ORDER BY n").fetchall() == [("a", 1), ("b", 2)]


# Writes a larger version of a partition under a file-size limit (ulimit -f) and prints what happened.
_LIMITED_WRITE = """
import resource, sys, polars as pl
from hare_assets.lib.diskspace import OutOfSpaceError
from hare_assets.lib.storage import TableStore
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
frame = pl.DataFrame({"n": range(300_000), "text": [f"row {i} of a bigger table" for i in range(300_000)]})
try:
    TableStore(sys.argv[1]).write("docs", frame, "s")
except OutOfSpaceError as exc:
    print(exc.strerror)
    sys.exit(3)
"""


def test_a_full_disk_fails_the_write_with_path_and_bytes_and_keeps_the_previous_file(tmp_path):
    store = TableStore(str(tmp_path))
    store.write("docs", pl.DataFrame({"n": [0], "text": ["previous"]}), "s")
    before = (tmp_path / "docs" / "s.parquet").read_bytes()
    proc = subprocess.run([sys.executable, "-c", _LIMITED_WRITE, str(tmp_path), str(256 * 1024)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    message = proc.stdout.strip()
    needed = int(message.split("needs about ")[1].split(" bytes")[0].replace(",", ""))
    assert message.startswith(f"cannot write {tmp_path / 'docs' / 's.parquet'}: the file size limit (ulimit -f) was reached")
    assert needed > 256 * 1024 and "the previous version is intact" in message
    assert (tmp_path / "docs" / "s.parquet").read_bytes() == before
    assert store.read("docs", "s").to_dicts() == [{"n": 0, "text": "previous"}]
    assert not list((tmp_path / "docs").glob("*.tmp-*")), "the partial temporary file is removed"


def test_part_files_are_seen_only_once_committed_and_commit_clears_what_it_does_not_list(tmp_path):
    store = TableStore(str(tmp_path))
    with store.part_writer("raw", "web-00000", "a", {"n": pl.Int64}) as part:
        part.write(pl.DataFrame({"n": [1, 2]}))
    store.write_part("raw", "web-00000", "old", pl.DataFrame({"n": [9]}))
    stray = tmp_path / "raw" / "web-00000" / "b.parquet.tmp-0123"  # a killed run's half-written part
    stray.write_bytes(b"PAR1")
    assert not store.exists("raw", "web-00000") and store.partitions("raw") == []  # nothing committed yet
    store.commit("raw", "web-00000", ["a"])
    assert store.read("raw", "web-00000")["n"].to_list() == [1, 2] and store.num_rows("raw") == 2
    assert sorted(p.name for p in (tmp_path / "raw" / "web-00000").iterdir()) == ["_manifest.json", "a.parquet"]


def test_a_filtered_read_returns_one_slice_of_a_table_sorted_by_it(tmp_path):
    """How `deduplicated_documents` reads its block's decisions: only that block's rows come back."""
    store = TableStore(str(tmp_path / "home"))
    frame = pl.DataFrame({"block": [f"web-{i // 1000:05d}" for i in range(5000)], "row": list(range(5000))})
    store.write("decisions", frame)
    got = store.read("decisions", filters=[("block", "=", "web-00003")])
    assert got["row"].to_list() == list(range(3000, 4000)) and set(got["block"]) == {"web-00003"}
    assert store.read("decisions", filters=[("block", "=", "web-00009")]).height == 0
    assert store.read("decisions", columns=["row"], filters=[("block", "=", "web-00000")]).columns == ["row"]

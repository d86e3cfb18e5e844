"""D3 open task data: the real task sets in $HARE_REAL_DATA/tasks become natural-language text."""

import dagster as dg
import polars as pl

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore

ROWS = {"sst2": 872 + 6735, "boolq": 3270, "copa": 100, "commonsense_qa": 1221, "openbook_qa": 500}


def test_real_task_sets_convert(real_data, tmp_path):
    profile = load_profile("local-corpora")
    defs = build_definitions(profile, home=str(tmp_path))
    store = TableStore(str(tmp_path))
    for task, rows in ROWS.items():
        result = dg.materialize(list(defs.assets), selection=["task_documents"], partition_key=task,
                                resources=dict(defs.resources))
        assert result.success, task
        [check] = result.get_asset_check_evaluations()
        assert check.passed, check.description
        kept, removed = store.read("task_documents", task), store.read("task_documents__removed", task)
        assert kept.height + removed.height + store.num_rows("task_documents__quarantine", task) == rows
        assert kept.height >= 0.95 * rows, (task, removed.group_by("reason").len())
        assert (kept["source"] == f"task:{task}").all() and kept["seed_doc_ids"].list.len().eq(1).all()
    sst2 = store.read("task_documents", "sst2")
    assert sst2["text"].str.ends_with("Answer: positive").sum() > 3000
    assert sst2.filter(pl.col("text").str.contains("it's a charming and often affecting journey.")).height == 1
    copa = store.read("task_documents", "copa")["text"].to_list()
    assert "The man turned on the faucet, therefore water flowed from the spout." in copa
    csqa = store.read("task_documents", "commonsense_qa")["text"].to_list()
    assert any(t.endswith("Answer: A. bank") for t in csqa)

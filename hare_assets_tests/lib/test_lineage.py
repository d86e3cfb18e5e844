"""explain / diff over recorded checkpoints (tables written the way the checkpoint and score assets write them)."""

import json

import polars as pl
import pytest

from hare_assets.lib.contamination import HITS as HIT_SCHEMA
from hare_assets.lib.lineage import (
    BASELINES,
    CHECKPOINT_ACCOUNTING,
    CHECKPOINT_MANIFESTS,
    CHECKPOINT_SCHEMA,
    CHECKPOINTS,
    HITS,
    SAMPLES_HISTORY,
    SCORES_HISTORY,
    LineageError,
    baseline_record,
    diff,
    explain,
    render_diff,
    render_explain,
    resolve,
)
from hare_assets.lib.storage import TableStore


def _record(store: TableStore, ckpt: str, stage: str, created: str, parent: str | None, settings: dict,
            manifest: list[tuple], score: float, removed: int) -> None:
    store.write(CHECKPOINTS, pl.DataFrame(schema=CHECKPOINT_SCHEMA, data=[{
        "checkpoint_id": ckpt, "stage": stage, "path": f"/ckpt/{ckpt}", "created_at": created, "init_from": parent,
        "preset": "mini", "steps": 10, "tokens": 1000, "final_loss": 4.0, "tokens_per_s": 1.0, "params": 1,
        "data_fingerprint": "x", "settings": json.dumps(settings)}]), ckpt)
    store.write(CHECKPOINT_MANIFESTS, pl.DataFrame(manifest, schema=["dataset", "source", "shard", "topic", "tokens", "samples", "documents"],
                                                   orient="row"), ckpt)
    store.write(CHECKPOINT_ACCOUNTING, pl.DataFrame([("clean_documents", "web", "kept", 90), ("clean_documents", "web", "non_english", removed)],
                                                    schema=["stage", "source", "reason", "rows"], orient="row"), ckpt)
    store.write(SCORES_HISTORY, pl.DataFrame([{"benchmark": "arc", "stage": stage, "checkpoint_id": ckpt, "metric": "acc_norm",
                                               "subset": "all", "value": score, "stderr": 0.01, "n": 100}]), f"{ckpt}__arc")


@pytest.fixture
def store(tmp_path):
    store = TableStore(str(tmp_path))
    base = {"clean": {"language": {"min_score": 0.2}}, "sources": [{"name": "web", "weight": 1.0}]}
    _record(store, "stage1-aaaa", "stage1", "2026-12-01T00:00:00+00:00", None, base,
            [("d1", "web", "a.jsonl", "t1", 600, 6, 6), ("d1", "web", "b.jsonl", "t2", 400, 4, 4)], 0.30, 10)
    _record(store, "stage2-bbbb", "stage2", "2026-12-02T00:00:00+00:00", "stage1-aaaa", base,
            [("d1", "web", "a.jsonl", "t1", 500, 5, 5), ("d2", "synthetic", "topic=t1", "t1", 500, 3, 3)], 0.32, 10)
    changed = {"clean": {"language": {"min_score": 0.5}}, "sources": [{"name": "web", "weight": 2.0}]}
    _record(store, "stage2-cccc", "stage2", "2026-12-03T00:00:00+00:00", "stage1-aaaa", changed,
            [("d1", "web", "a.jsonl", "t1", 300, 3, 3), ("d1", "web", "c.jsonl", "t3", 200, 2, 2),
             ("d2", "synthetic", "topic=t1", "t1", 500, 3, 3)], 0.27, 25)
    for ckpt, scores in (("stage2-bbbb", [1, 1, 0, 0, 1]), ("stage2-cccc", [1, 0, 1, 0, 0])):
        store.write(SAMPLES_HISTORY, pl.DataFrame({"split": ["test"] * 5, "item_id": [f"arc/{i}" for i in range(5)],
                                                   "score": [float(x) for x in scores]}), f"{ckpt}__arc")
    hit = {k: None for k in HIT_SCHEMA} | {"benchmark": "arc", "item_id": "arc/4", "dataset": "d1", "action": "kept",
                                        "doc_id": "web-a-0", "source": "web", "shard": "a.jsonl", "row": 0}
    store.write(HITS, pl.DataFrame([hit], schema=HIT_SCHEMA))
    return store


def test_diff_lists_the_items_whose_scores_moved(store):
    [items] = diff(store, "stage2~1", "stage2")["items"]
    assert (items["items"], items["higher"], items["lower"], items["same"]) == (5, 1, 2, 2)
    assert items["higher_examples"] == ["arc/2"] and sorted(items["lower_examples"]) == ["arc/1", "arc/4"]
    assert items["changed_contaminated"] == 1  # arc/4 has a contamination hit
    assert "arc items: 1 higher, 2 lower, 2 same of 5 (1 of the changed have contamination hits)" in render_diff(
        diff(store, "stage2~1", "stage2"))
    assert diff(store, "stage1", "stage2")["items"] == []  # stage1 has no per-item scores recorded


def test_references(store):
    assert resolve(store, "stage2")["checkpoint_id"] == "stage2-cccc"
    assert resolve(store, "stage2~1")["checkpoint_id"] == "stage2-bbbb"
    assert resolve(store, "stage1-a")["checkpoint_id"] == "stage1-aaaa"
    with pytest.raises(LineageError, match="only 2 stage2"):
        resolve(store, "stage2~2")
    with pytest.raises(LineageError, match="several"):
        resolve(store, "stage")


def test_diff_names_what_changed_in_the_data_and_the_settings(store):
    d = diff(store, "stage2~1", "stage2")
    assert d["scores"] == [{"benchmark": "arc", "metric": "acc_norm", "subset": "all", "a": 0.32, "b": 0.27, "delta": pytest.approx(-0.05)}]
    assert d["shards_added"] == ["web/c.jsonl"] and d["shards_removed"] == []
    assert {(r["source"], r["shard"], r["delta"]) for r in d["tokens_by_shard"]} == {("web", "a.jsonl", -200), ("web", "c.jsonl", 200)}
    assert {(s["setting"], s["a"], s["b"]) for s in d["settings_changed"]} == {
        ("clean.language.min_score", 0.2, 0.5), ("sources.web.weight", 1.0, 2.0)}
    assert d["rows_changed"] == [{"stage": "clean_documents", "source": "web", "reason": "non_english", "a": 10, "b": 25, "delta": 15}]
    text = render_diff(d)
    assert "clean.language.min_score: 0.2 -> 0.5" in text and "shards added: web/c.jsonl" in text


def test_explain_walks_to_the_parent_and_the_shards(store):
    facts = explain(store, "arc")  # the newest evaluated checkpoint: stage2-cccc
    assert [c["checkpoint_id"] for c in facts["checkpoints"]] == ["stage2-cccc", "stage1-aaaa"]
    assert facts["mixture"]["tokens"] == 1000 and facts["contamination"]["documents"] == 1  # the one kept hit
    text = render_explain(facts)
    assert text.splitlines()[0] == "arc acc_norm = 0.2700 ± 0.0100 (n=100)"
    assert "web/a.jsonl 300" in text and "clean_documents: kept 90; removed non_english 25" in text
    assert explain(store, "arc", "stage2~1")["scores"][0]["value"] == 0.32
    with pytest.raises(LineageError, match="no checkpoint has scores on 'mmlu'"):
        explain(store, "mmlu")


def test_a_score_is_compared_with_the_previous_checkpoint_of_its_stage(store):
    from hare_assets.lib.lineage import previous_evaluated

    assert previous_evaluated(store, "stage2", "arc", "stage2-cccc") == "stage2-bbbb"
    assert previous_evaluated(store, "stage2", "arc", "stage2-bbbb") is None
    assert previous_evaluated(store, "stage1", "arc", "stage1-aaaa") is None


def test_a_baseline_is_named_and_compared_like_a_checkpoint(store):
    """An external model's scores stand in the same history: `hare diff NAME stage2` compares it item by item,
    with no training data on its side; explaining it says why there is nothing to trace."""
    store.write(BASELINES, pl.DataFrame([baseline_record("tiny", "org/tiny-model", "/models/tiny")], schema=CHECKPOINT_SCHEMA), "tiny")
    store.write(SCORES_HISTORY, pl.DataFrame([{"benchmark": "arc", "stage": "tiny", "checkpoint_id": "baseline-tiny", "metric": "acc_norm",
                                               "subset": "all", "value": 0.25, "stderr": 0.01, "n": 100}]), "baseline-tiny__arc")
    store.write(SAMPLES_HISTORY, pl.DataFrame({"split": ["test"] * 5, "item_id": [f"arc/{i}" for i in range(5)],
                                               "score": [0.0, 0.0, 1.0, 1.0, 1.0]}), "baseline-tiny__arc")
    assert resolve(store, "tiny")["checkpoint_id"] == "baseline-tiny" == resolve(store, "baseline-tiny")["checkpoint_id"]
    assert resolve(store, "stage2")["checkpoint_id"] == "stage2-cccc"  # stages still name the newest checkpoint
    d = diff(store, "tiny", "stage2")
    [score] = [s for s in d["scores"] if s["subset"] == "all"]
    assert (score["a"], score["b"]) == (0.25, 0.27)
    [items] = d["items"]
    assert (items["higher"], items["lower"], items["same"]) == (1, 2, 2)
    assert d["tokens_by_dataset"] == [{"dataset": "d1", "a": 0, "b": 500, "delta": 500}, {"dataset": "d2", "a": 0, "b": 500, "delta": 500}]
    text = render_diff(d)
    assert text.startswith("a = baseline-tiny (external baseline, scored ") and "arc acc_norm [all]: 0.2500 -> 0.2700" in text
    with pytest.raises(LineageError, match="external model .org/tiny-model.: it has scores but no training data"):
        explain(store, "arc", "tiny")


def test_checkpoint_ids_follow_config_data_and_parent_not_paths():
    from hare_assets.lib.lineage import checkpoint_id
    from hare_assets.lib.training import TrainConfig

    here = TrainConfig(data="/a/packed/stage2", out_dir="/a/ckpt", init_from="/a/ckpt/stage1/stage1-x/checkpoint")
    there = TrainConfig(data="/b/packed/stage2", out_dir="/b/ckpt", init_from="/b/ckpt/stage1/stage1-x/checkpoint")
    same = checkpoint_id("stage2", here, "data-fp", "stage1-x")
    assert same.startswith("stage2-") and same == checkpoint_id("stage2", there, "data-fp", "stage1-x")
    assert checkpoint_id("stage2", here, "data-fp", "stage1-y") != same  # another parent
    assert checkpoint_id("stage2", here, "other-data", "stage1-x") != same
    assert checkpoint_id("stage2", TrainConfig(data="/a", out_dir="/a", init_from=here.init_from, lr=1e-3), "data-fp", "stage1-x") != same

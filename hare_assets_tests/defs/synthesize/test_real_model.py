"""D2 and D3 written by a real language model (the packaged SmolLM2-135M-Instruct) through the real assets, on the
demo's topics: small counts, every request accounted for, provenance recorded."""

import shutil
from pathlib import Path

import dagster as dg
import polars as pl

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import Profile, SamplingConfig, load_profile
from hare_assets.lib.storage import TableStore

SMOLLM2 = "smollm2-135m-instruct"


def _with(profile: Profile, **sections: dict) -> Profile:
    return profile.model_copy(update={name: getattr(profile, name).model_copy(update=fields) for name, fields in sections.items()})


def _accounted(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [mat] = [e.materialization for e in result.get_asset_materialization_events() if e.materialization.asset_key.path[-1] == asset]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["rows_in"] == meta["dagster/row_count"] + meta["rows_removed"] + meta["rows_quarantined"], meta
    return meta


def test_d2_and_d3_come_from_the_real_model(demo_run, tmp_path):
    store, _ = demo_run
    home = tmp_path / "home"
    for table in ("topic_documents", "topic_clusters"):
        shutil.copytree(Path(store.root) / table, home / table)
    sampling = SamplingConfig(max_tokens=320, temperature=0.7, top_p=0.9, repetition_penalty=1.1, seed=0)
    profile = _with(load_profile("demo"),
                    generator={"backend": "transformers", "model": SMOLLM2, "device": "cpu", "batch_size": 8, "sampling": sampling},
                    synthesis={"seeds_per_topic": 4}, tasks={"restruct": ["mcq", "qa"], "seeds_per_task": 4, "open": []})
    defs = build_definitions(profile, home=str(home))
    instance = dg.DagsterInstance.ephemeral()
    topic = sorted(store.partitions("topic_documents"))[0]
    instance.add_dynamic_partitions("topics", [topic])

    def materialize(asset: str, partition: str) -> dg.ExecuteInProcessResult:
        result = dg.materialize(list(defs.assets), selection=[asset], partition_key=partition, resources=dict(defs.resources),
                                instance=instance)
        assert result.success, (asset, partition)
        return result

    tables = TableStore(str(home))
    d2_meta = _accounted(materialize("synthetic_documents", topic), "synthetic_documents")
    assert d2_meta["rows_in"] == 4 and d2_meta["generation"]["generated"] == 4
    d2 = tables.read("synthetic_documents", topic)
    assert d2.height >= 1, tables.read("synthetic_documents__removed", topic).select("reason", "detail").rows()
    seeds = tables.read("topic_documents", topic)
    seed_text = dict(zip(seeds["doc_id"], seeds["text"]))
    for row in d2.iter_rows(named=True):
        assert row["generator"] == SMOLLM2 and row["topic"] == topic and row["prompt_version"].startswith("d2/")
        assert row["seed_doc_ids"][0] in seed_text
        assert row["text"][:80] not in seed_text[row["seed_doc_ids"][0]]  # written by the model, not copied from its seed

    for task in ("mcq", "qa"):
        meta = _accounted(materialize("task_documents", task), "task_documents")
        assert meta["rows_in"] == min(4, d2.height)  # one item per D2 seed
        removed = tables.read("task_documents__removed", task) if tables.exists("task_documents__removed", task) else pl.DataFrame()
        reasons = removed["reason"].to_list() if removed.height else []
        assert "malformed_json" not in reasons and "missing_field" not in reasons, reasons  # decoding kept to the schema
        kept = tables.read("task_documents", task)
        assert (kept["generator"] == SMOLLM2).all()
    mcq = tables.read("task_documents", "mcq")
    assert mcq["text"].str.contains(r"\nA\. .+\nB\. .+\nC\. .+\nD\. .+\nAnswer: [ABCD]\. ").all()
    assert {d for ids in mcq["seed_doc_ids"].to_list() for d in ids} <= set(d2["doc_id"])  # provenance back to D2 rows

"""This project's side of bench/scale.py; runs in .venv. D1 through the real Dagster assets, block by block.

    python bench/_scale_runner.py PROFILE HOME RESULT_JSON [d1|packed]

Materializes shard_manifest, then per block raw_documents + clean_documents + minhash_signatures,
then duplicate_decisions and the demo benchmark's n-gram index, then per block deduplicated_documents
+ decontaminated_documents, in one process with an in-memory Dagster instance (the block stages
start their own worker pools). A second call on the same HOME with more shards is the incremental
case: finished blocks are skipped shard by shard. With `packed`, every stage up to packed_sequences of
stage1 follows: tokens per block, embeddings, topics, the mixture and its pack. Writes timings and the
decisions to RESULT_JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
from hare_assets.lib.storage import TableStore


def main() -> None:
    profile_path, home, result_path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    through = sys.argv[4] if len(sys.argv) > 4 else "d1"
    profile = load_profile(profile_path)
    defs = build_definitions(profile, home=home)
    assets, resources = list(defs.assets), dict(defs.resources)
    instance = dg.DagsterInstance.ephemeral()
    timings: dict[str, float] = {}

    def materialize(label: str, selection: list[str], partition: str | None = None) -> dg.ExecuteInJobResult:
        started = time.perf_counter()
        result = dg.materialize(assets, selection=selection, partition_key=partition, resources=resources, instance=instance,
                                raise_on_error=False)
        timings[label] = timings.get(label, 0.0) + time.perf_counter() - started
        if not result.success:
            raise SystemExit(f"{label} [{partition}] failed")
        return result

    started = time.perf_counter()
    materialize("manifest", ["shard_manifest"])
    blocks = sorted(instance.get_dynamic_partitions("blocks"))
    for block in blocks:
        materialize("ingest_clean_sign", ["raw_documents", "clean_documents", "minhash_signatures"], block)
    for benchmark in profile.integrity.benchmarks:
        materialize("benchmarks", ["benchmark_sets"], benchmark)
    materialize("decide", ["duplicate_decisions", "benchmark_ngram_index"])
    for block in blocks:
        materialize("dedup_decontaminate", ["deduplicated_documents", "decontaminated_documents"], block)
    packed = {}
    if through == "packed":
        for block in blocks:
            materialize("tokens", ["document_tokens"], block)
        materialize("embeddings", ["document_embeddings"])
        materialize("topics", ["topic_clusters"])
        result = materialize("mixture_pack", ["training_mixture", "packed_sequences"], "stage1")
        packed = {e.materialization.asset_key.to_user_string(): e.materialization.metadata["fingerprint"].value
                  for e in result.get_asset_materialization_events()}
    timings["total"] = time.perf_counter() - started

    store = TableStore(home)
    decisions = store.read("duplicate_decisions", columns=["shard", "row", "reason", "kept_shard", "kept_row"])
    clean_removed = store.read("clean_documents__removed", columns=["shard", "row"])
    result = {
        "timings": timings,
        "blocks": blocks,
        "fingerprints": packed,
        "raw_rows": store.num_rows("raw_documents"),
        "clean_rows": store.num_rows("clean_documents"),
        "kept_rows": store.num_rows("decontaminated_documents"),
        # from the shards' receipts: reading the text back would hold the whole corpus in this process's peak
        "raw_bytes": sum(store.receipt("raw_documents", b, p)["bytes"] for b in blocks
                         for p in store.committed("raw_documents", b)["parts"]),
        "decisions": decisions.to_dicts(),
        "clean_removed": clean_removed.select(pl.format("{}#{}", "shard", "row")).to_series().to_list(),
    }
    result_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

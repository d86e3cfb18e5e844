"""D1 on blocks through the real assets: one more shard gives what all shards from scratch give and leaves the earlier
blocks' files as they were; a block five times bigger needs no more memory; the embeddings keep what a kill -9 left
and embed only a new block."""

import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from hare_assets.cli import main
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.lineage import checkpoints
from hare_assets.lib.paths import DEMO_DIR
from hare_assets.lib.profile import load_profile
from hare_assets.lib.shards import safe_name
from hare_assets.lib.storage import TableStore

_SENTENCES = sorted({s.strip() for line in (DEMO_DIR / "corpus/encyclopedia/part-000.jsonl").open()
                     for s in re.split(r"(?<=\.) ", json.loads(line)["text"]) if len(s.split()) >= 6})


def _document(rng: random.Random, sentences: int = 14) -> str:
    return " ".join(rng.sample(_SENTENCES, sentences))


def _near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(3):
        words[rng.randrange(len(words))] = "indeed"
    return " ".join(words)


def _write_shard(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def _profile(tmp_path: Path, name: str, corpus: Path, block_bytes: int, extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ningest: {{block_bytes: {block_bytes}, workers: 1}}\n"
                    "clean: {language: {sample_chars: 300}}\n"  # language ID dominates cleaning time; a sample does here
                    f"sources: [{{name: web, format: jsonl, path: {corpus}}}]\n{extra}")
    return path


# D1 through decontamination (the demo's benchmark), then tokens, a stage1 mixture and its pack.
_THROUGH_PACKING = "integrity: {benchmarks: [demo_mc]}\nmixture: {stage1: {tokens: 20000, datasets: {d1: 1.0}}}\n"
# ... and a checkpoint that new data continues (a few steps of the smallest model)
_CONTINUED = ("model: {preset: micro}\ntraining: {on_new_data: continue, "
              "stage1: {max_steps: 2, micro_batch_size: 2, warmup_steps: 1, save_every: 0, log_every: 1}}\n")


def _checkpoint(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict:
    result = dg.materialize(list(defs.assets), selection=["checkpoint"], partition_key="stage1", resources=dict(defs.resources),
                            instance=instance)
    assert result.success
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def _tokens_mixture_pack(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict:
    """document_tokens for every block, then training_mixture and packed_sequences of stage1; their metadata."""
    assets, resources = list(defs.assets), dict(defs.resources)
    read = 0
    for block in sorted(instance.get_dynamic_partitions("blocks")):
        result = dg.materialize(assets, selection=["document_tokens"], partition_key=block, resources=resources, instance=instance)
        assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
        read += result.get_asset_materialization_events()[0].materialization.metadata["shards_read"].value
    result = dg.materialize(assets, selection=["training_mixture", "packed_sequences"], partition_key="stage1",
                            resources=resources, instance=instance)
    assert result.success
    meta = {e.materialization.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    return {"tokens_shards_read": read, "mixture": meta["training_mixture"]["fingerprint"].value,
            "pack": meta["packed_sequences"]["fingerprint"].value, "blocks": meta["packed_sequences"]["blocks"].value}


def _kept(home: Path) -> set[tuple]:
    return set(TableStore(str(home)).read("deduplicated_documents", columns=["doc_id", "shard", "row"]).iter_rows())


def test_one_more_shard_equals_all_shards_from_scratch_and_leaves_earlier_files_alone(tmp_path, materialize_d1, monkeypatch,
                                                                                     capsys):
    """Also: the new shard's block alone is tokenized, the mixture and pack equal those from scratch, and the stage's
    checkpoint continues on them (training.on_new_data: continue), `hare diff` naming the shard it added."""
    rng = random.Random(11)
    shards = [[_document(rng) for _ in range(12)] for _ in range(6)]
    for i in range(1, 6):  # each shard repeats some of the shards before it, exactly and nearly
        earlier = rng.choice(shards[:i])
        shards[i] += [earlier[0], _near_copy(earlier[1], rng)]
    shards[5] += [_near_copy(shards[5][0], rng)]  # and the last one repeats itself
    everything, growing = tmp_path / "all", tmp_path / "growing"
    for folder in (everything, growing):
        folder.mkdir()
        for i, texts in enumerate(shards[:5] if folder == growing else shards):
            _write_shard(folder / f"part-{i}.jsonl", texts)

    block_bytes = 2 * (everything / "part-0.jsonl").stat().st_size  # two shards a block
    scratch = build_definitions(load_profile(_profile(tmp_path, "all", everything, block_bytes, _THROUGH_PACKING + _CONTINUED)),
                                home=str(tmp_path / "h-all"))
    scratch_instance = dg.DagsterInstance.ephemeral()
    materialize_d1(scratch, scratch_instance, decontaminate=True)
    from_scratch = _tokens_mixture_pack(scratch, scratch_instance)

    defs = build_definitions(load_profile(_profile(tmp_path, "growing", growing, block_bytes, _THROUGH_PACKING + _CONTINUED)),
                             home=str(tmp_path / "h-grow"))
    instance = dg.DagsterInstance.ephemeral()
    materialize_d1(defs, instance, decontaminate=True)
    assert _tokens_mixture_pack(defs, instance)["tokens_shards_read"] == 5
    first = _checkpoint(defs, instance)["checkpoint_id"]
    blocks = sorted(instance.get_dynamic_partitions("blocks"))
    assert len(blocks) >= 3
    before = {p: p.read_bytes() for p in sorted((tmp_path / "h-grow").glob("*/web-0000*/**/*")) if p.is_file()}
    kept_before = _kept(tmp_path / "h-grow")

    _write_shard(growing / "part-5.jsonl", shards[5])
    materialize_d1(defs, instance, decontaminate=True)
    incremental = _tokens_mixture_pack(defs, instance)
    # the new block alone was tokenized; the mixture and the pack equal those built from scratch
    assert incremental == {**from_scratch, "tokens_shards_read": 1} and incremental["blocks"] > 0
    continued = _checkpoint(defs, instance)["checkpoint_id"]
    record = checkpoints(TableStore(str(tmp_path / "h-grow"))).filter(pl.col("checkpoint_id") == continued).row(0, named=True)
    assert continued != first and record["init_from"] == first
    monkeypatch.setenv("HARE_HOME", str(tmp_path / "h-grow"))
    assert main(["diff", "stage1", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert (added["a"]["checkpoint_id"], added["b"]["checkpoint_id"]) == (first, continued)
    assert added["shards_added"] == ["web/part-5.jsonl"] and added["shards_removed"] == []
    assert sorted(instance.get_dynamic_partitions("blocks")) == [*blocks, f"web-{len(blocks):05d}"]
    after = {p: p.read_bytes() for p in before}
    assert after == before  # every file of the earlier blocks, data and receipts, byte for byte
    kept = _kept(tmp_path / "h-grow")
    assert kept_before <= kept  # nothing kept before was removed by the new shard
    assert kept == _kept(tmp_path / "h-all")
    removed = TableStore(str(tmp_path / "h-grow")).read("deduplicated_documents__removed")
    assert set(removed.filter(pl.col("shard") == "part-5.jsonl")["reason"]) == {"exact_duplicate", "near_duplicate"}


_PEAK_RSS = """
import resource, sys, dagster as dg, psutil
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
defs = build_definitions(load_profile(sys.argv[1]), home=sys.argv[2])
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions("blocks", ["web-00000"])
print(psutil.Process().memory_info().rss // 1024)  # before the work: imports and definitions
assert dg.materialize(list(defs.assets), selection=["shard_manifest", "raw_documents", "clean_documents", "minhash_signatures"],
                      partition_key="web-00000", resources=dict(defs.resources), instance=instance).success
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_a_block_five_times_bigger_needs_no_more_memory(tmp_path):
    rng = random.Random(5)
    peaks = {}
    shard = [_document(rng, 60) for _ in range(200)]  # about 1.5 MB
    base = {}
    for name, shard_count in (("small", 2), ("large", 10)):
        corpus = tmp_path / name
        corpus.mkdir()
        for i in range(shard_count):
            _write_shard(corpus / f"part-{i:02d}.jsonl", shard[i:] + shard[:i])
        profile = _profile(tmp_path, name, corpus, 1 << 30)
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(profile), str(tmp_path / f"home-{name}")],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        base[name], peaks[name] = (int(v) * 1024 for v in proc.stdout.split()[-2:])
        store = TableStore(str(tmp_path / f"home-{name}"))
        assert store.num_rows("raw_documents", "web-00000") == 200 * shard_count
    growth = {k: (peaks[k] - base[k]) / 2**20 for k in peaks}
    print(f"\npeak RSS: 3 MB block {peaks['small'] / 2**20:.0f} MiB (+{growth['small']:.0f} for the work), "
          f"15 MB block {peaks['large'] / 2**20:.0f} MiB (+{growth['large']:.0f})")
    assert peaks["large"] <= 1.3 * peaks["small"], peaks
    # What the work itself adds must not grow with the block either (holding the block, six bytes per byte of
    # input before blocks, would add about 70 MB more to the large one).
    assert growth["large"] <= 1.3 * growth["small"] + 10, growth


_EMBED_UNTIL_KILLED = """
import sys, dagster as dg
from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile
defs = build_definitions(load_profile(sys.argv[1]), home=sys.argv[2])
with dg.DagsterInstance.from_config(sys.argv[3]) as instance:
    dg.materialize(list(defs.assets), selection=["document_embeddings"], resources=dict(defs.resources), instance=instance)
"""


def _metadata(defs: dg.Definitions, instance: dg.DagsterInstance, asset: str, partition: str | None = None,
              run_config: dict | None = None) -> dict:
    result = dg.materialize(list(defs.assets), selection=[asset], partition_key=partition, resources=dict(defs.resources),
                            instance=instance, run_config=run_config)
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert all(c.passed for c in result.get_asset_check_evaluations())
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.glob("**/*")) if p.is_file()}


def test_embeddings_and_topics_grow_with_a_new_block_and_keep_what_a_kill_left(tmp_path, materialize_d1):
    """Embeddings: a kill -9 keeps the finished shards; a new block embeds only its documents. Topics: the new
    documents join the existing topics (keys, earlier assignments and D2 untouched); a changed topics.k re-clusters
    and archives the D2 of a topic that vanished."""
    rng = random.Random(12)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        _write_shard(corpus / f"part-{i}.jsonl", [_document(rng) for _ in range(6)])
    block_bytes = 2 * (corpus / "part-0.jsonl").stat().st_size
    profile = _profile(tmp_path, "embed", corpus, block_bytes, "topics: {k: 2}\n")
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    defs = build_definitions(load_profile(profile), home=str(home))
    store = TableStore(str(home))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        materialize_d1(defs, instance)
        blocks = sorted(instance.get_dynamic_partitions("blocks"))
    assert len(blocks) >= 2

    # kill -9 once the first shard's vectors are written: they stay, with their receipt
    markers = tmp_path / "failpoints"
    markers.mkdir()
    env = {**os.environ, "HARE_FAILPOINT": "shard_done", "HARE_FAILPOINT_DIR": str(markers), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _EMBED_UNTIL_KILLED, str(profile), str(home), str(dagster_home)], env=env)
    deadline = time.monotonic() + 180
    while not (markers / "shard_done").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the embeddings never finished a shard"
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    done = [p for b in blocks for p in (home / "document_embeddings" / b / "_receipts").glob("*.json")]
    assert [p.stem for p in done] == [safe_name("part-0.jsonl")]
    first = store.read("deduplicated_documents", blocks[0]).filter(pl.col("shard") == "part-0.jsonl").height

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        meta = _metadata(defs, instance, "document_embeddings")
        total = store.num_rows("deduplicated_documents")
        assert (meta["shards_skipped"], meta["shards_read"]) == (1, 3) and first > 0
        assert meta["embedded_now"] == total - first and meta["dagster/row_count"] == total
        vectors = store.read("document_embeddings").join(store.read("deduplicated_documents", columns=["doc_id", "text"]),
                                                         on="doc_id")
        from hare_assets.lib.embed import Embedder

        cfg = load_profile(profile).embed
        direct = Embedder(max_seq_length=cfg.max_seq_length).embed(vectors["text"].to_list())
        assert np.abs(np.asarray(vectors["embedding"].to_list()) - direct).max() < 1e-5  # the killed run's shard included

        assert _metadata(defs, instance, "topic_clusters")["mode"] == "re-clustered: no topics yet"
        keys = sorted(instance.get_dynamic_partitions("topics"))
        for key in keys:  # each topic's documents and D2
            _metadata(defs, instance, "topic_documents", key)
            _metadata(defs, instance, "synthetic_documents", key)
        assigned = store.read("topic_clusters__assignments")
        embeddings, d2 = _files(home / "document_embeddings"), _files(home / "synthetic_documents")
        assert len(keys) == 2 and len(d2) == 2

        # one more shard: a new block; only its documents are embedded, and they join the existing topics
        _write_shard(corpus / "part-4.jsonl", [_document(rng) for _ in range(6)])
        materialize_d1(defs, instance)
        [new_block] = sorted(set(instance.get_dynamic_partitions("blocks")) - set(blocks))
        added = store.num_rows("deduplicated_documents", new_block)
        meta = _metadata(defs, instance, "document_embeddings")
        assert meta["embedded_now"] == added and (meta["shards_read"], meta["shards_skipped"]) == (1, 4)
        assert {p: p.read_bytes() for p in embeddings} == embeddings  # the other blocks' vectors, byte for byte
        assert _metadata(defs, instance, "topic_clusters")["mode"] == f"{added} new documents added to the existing topics"
        assert sorted(instance.get_dynamic_partitions("topics")) == keys
        grown = store.read("topic_clusters__assignments")
        assert grown.height == assigned.height + added
        assert grown.join(assigned, on="doc_id", how="semi").sort("doc_id").equals(assigned.sort("doc_id"))
        assert _files(home / "synthetic_documents") == d2

        # topics.k changes: everything is re-clustered, and the topic that vanished keeps its D2 in the archive
        fewer = build_definitions(load_profile(_profile(tmp_path, "embed-k1", corpus, block_bytes, "topics: {k: 1}\n")),
                                  home=str(home))
        meta = _metadata(fewer, instance, "topic_clusters")
        [gone] = meta["vanished_topics"].split(", ")
        assert meta["mode"] == "re-clustered: topics.k, topics.seed or the embedding model changed"
        assert sorted(instance.get_dynamic_partitions("topics")) == sorted(set(keys) - {gone})
    assert not store.exists("synthetic_documents", gone)
    assert store.read("synthetic_documents__archived", gone).height > 0

"""`hare demo` end to end on the embedded demo corpus: every planted problem is caught by its stage."""

import json

import polars as pl
import pytest

from hare_assets.cli import main
from hare_assets.lib.paths import DEMO_DIR
from hare_assets.lib.profile import load_profile

PLANTED = json.loads((DEMO_DIR / "planted.json").read_text())
DEMO = load_profile("demo")
SMOLLM2 = DEMO.generator.model  # the demo's generator, also its baseline


@pytest.fixture
def demo_home(demo_run):
    return demo_run


def _key(row: dict) -> tuple:
    return (row["source"], row["file"], row["row"])


def _keys(frame: pl.DataFrame) -> set[tuple]:
    return set(zip(frame["source"], frame["shard"], frame["row"]))


def test_demo_runs_are_recorded_in_the_instance(demo_home):
    _, root = demo_home
    assert (root / ".hare" / "dagster" / "storage").is_dir()


def test_malformed_records_are_quarantined(demo_home):
    store, _ = demo_home
    quarantine = pl.concat([store.read("raw_documents__quarantine", s) for s in store.partitions("raw_documents__quarantine")])
    assert {_key(m) for m in PLANTED["malformed"]} <= _keys(quarantine)


def test_non_english_incomplete_and_junk_are_removed(demo_home):
    store, _ = demo_home
    removed = pl.concat([store.read("clean_documents__removed", s) for s in store.partitions("clean_documents__removed")])
    reasons = dict(zip(zip(removed["source"], removed["shard"], removed["row"]), removed["reason"]))
    for item in PLANTED["non_english"]:
        assert reasons.get(_key(item)) == "non_english", item
    clean = pl.concat([store.read("clean_documents", s) for s in store.partitions("clean_documents")])
    edits = dict(zip(zip(clean["source"], clean["shard"], clean["row"]), clean["edits"]))
    for item in PLANTED["incomplete"]:  # removed, or (long documents) the cut-off tail trimmed away
        assert reasons.get(_key(item)) in {"incomplete", "too_few_words"} or "dangling_tail" in edits[_key(item)], item
    for item in PLANTED["junk"]:
        assert _key(item) in reasons, item


def test_pii_masked_and_links_stripped(demo_home):
    store, _ = demo_home
    clean = pl.concat([store.read("clean_documents", s) for s in store.partitions("clean_documents")])
    assert not clean["text"].str.contains(r"@example\.(org|com|net)").any()
    assert not clean["text"].str.contains(r"https?://").any()
    by_key = {k: e for k, e in zip(zip(clean["source"], clean["shard"], clean["row"]), clean["edits"])}
    for item in PLANTED["pii"]:
        if _key(item) in by_key:
            assert any(e.startswith("pii_") for e in by_key[_key(item)]), item
    for item in PLANTED["links"]:
        if _key(item) in by_key:
            assert "links" in by_key[_key(item)], item


def test_books_lose_their_boilerplate(demo_home):
    store, _ = demo_home
    assert [p for p in store.partitions("clean_documents") if p.startswith("books-")] == ["books-00000", "books-00001"]
    books = store.read("clean_documents").filter(pl.col("source") == "books")
    assert books.height >= 5
    assert books["edits"].list.contains("boilerplate").all()
    assert not books["text"].str.contains("Hare Demo Press").any()


def test_planted_duplicates_are_removed_across_sources(demo_home):
    """Each planted pair loses one member: in dedup (pointing at the other; the source listed first in the
    profile wins), or earlier when the copy is too short to pass the quality rules."""
    store, _ = demo_home
    removed = store.read("deduplicated_documents__removed")
    kept_for = dict(zip(zip(removed["source"], removed["shard"], removed["row"]),
                        zip(removed["kept_source"], removed["kept_shard"], removed["kept_row"])))
    cleaned_away = _keys(pl.concat([store.read("clean_documents__removed", s) for s in store.partitions("clean_documents__removed")]))
    by_dedup = 0
    for kind in ("near_duplicates", "exact_duplicates"):
        for pair in PLANTED[kind]:
            a, b = _key(pair["a"]), _key(pair["b"])
            if b in kept_for or a in kept_for:
                assert kept_for.get(b) == a or kept_for.get(a) == b, (kind, pair)
                by_dedup += 1
            else:
                assert b in cleaned_away or a in cleaned_away, (kind, pair)
    assert by_dedup >= 12, "most planted duplicates should be visible in deduplicated_documents__removed"


def test_every_stage_balances(demo_home):
    store, _ = demo_home
    for source in store.partitions("raw_documents"):
        raw = store.num_rows("raw_documents", source)
        assert raw == store.num_rows("clean_documents", source) + store.num_rows("clean_documents__removed", source) + store.num_rows("clean_documents__quarantine", source)
    assert len(store.partitions("raw_documents")) == 6  # the demo's small blocks: several per source
    for block in store.partitions("clean_documents"):
        assert store.num_rows("clean_documents", block) == (store.num_rows("deduplicated_documents", block)
                                                            + store.num_rows("deduplicated_documents__removed", block))
    assert store.num_rows("duplicate_decisions") == store.num_rows("deduplicated_documents__removed") > 0


def test_topics_match_the_demo_subjects(demo_home):
    store, _ = demo_home
    topics = store.read("topic_clusters")
    assert topics.height == 6
    words = {w for kws in topics["keywords"].to_list() for w in kws}
    assert {"football", "soil", "telescope"} & words


def test_synthetic_rows_are_real_model_text_traced_to_their_seeds(demo_home):
    """D2 is written by SmolLM2 for every topic in one batch; each reply is kept or removed with a reason, and a
    kept one names its seed, topic, generator and prompt, and is not a copy of its seed."""
    store, _ = demo_home
    d1 = store.read("deduplicated_documents", columns=["doc_id", "text"])
    seed_text = dict(zip(d1["doc_id"], d1["text"]))
    assigned = store.read("topic_clusters__assignments")
    kept = 0
    for topic in store.partitions("synthetic_documents"):
        rows = store.read("synthetic_documents", topic)
        removed = store.read("synthetic_documents__removed", topic)
        assert rows.height + removed.height == DEMO.synthesis.seeds_per_topic, topic
        assert (removed["reason"].str.len_chars() > 0).all() and (removed["detail"].str.len_chars() > 0).all()  # a rule, and why
        kept += rows.height
        assert (rows["topic"] == topic).all() and (rows["generator"] == SMOLLM2).all()
        assert rows["prompt_version"].str.starts_with("d2/").all()
        for row in rows.iter_rows(named=True):
            [seed] = row["seed_doc_ids"]
            assert seed in set(assigned.filter(pl.col("topic") == topic)["doc_id"])  # seeds come from the topic
            assert row["text"][:80] not in seed_text[seed]  # ... lead back to D1, and were rewritten, not copied
    assert kept >= len(store.partitions("synthetic_documents"))  # at least one per topic on average


def test_replies_cut_at_their_token_cap_keep_whole_sentences(demo_home):
    store, _ = demo_home
    rows = pl.concat([store.read("synthetic_documents", t) for t in store.partitions("synthetic_documents")])
    cut = rows.filter(pl.col("edits").list.contains("cut_at_max_tokens"))
    assert cut.height >= 1  # 112 tokens is shorter than most of SmolLM2's documents
    assert cut["text"].str.contains(r"[.!?…][\"'”’»)\]]*$").all()


def test_tasks_are_rendered_and_short(demo_home):
    """Every Restruct reply becomes a rendered item or a removal with a D3 reason; kept items are at most 512 tokens."""
    store, _ = demo_home
    formats = {"qa": r"^Read the passage and answer the question\.\n\n(?s:.)+\nQuestion: .+\nAnswer: .+", "mcq": r"\nA\. .+\nB\. .+\nC\. .+\nD\. .+\nAnswer: [ABCD]\. ",
               "cloze": r"^Fill in the blank\.\n.+\nAnswer: .+", "summary": r"^Summarize the following text\.\n(?s:.)+\nSummary: .+"}
    kept = 0
    for task, pattern in formats.items():
        rows = store.read("task_documents", task)
        removed = store.read("task_documents__removed", task)
        assert rows.height + removed.height == DEMO.tasks.seeds_per_task, task
        assert set(removed["reason"]) <= {"malformed_json", "missing_field", "bad_options", "answer_not_in_options", "ungrounded",
                                          "too_long"}, removed["reason"].to_list()
        assert rows["text"].str.contains(pattern).all() and (rows["generator"] == SMOLLM2).all(), task
        assert (rows["meta"].str.json_path_match("$.tokens").cast(pl.Int64) <= 512).all()
        kept += rows.height
    assert kept >= DEMO.tasks.seeds_per_task  # a quarter of the replies or more survive the D3 rules
    news = store.read("task_documents", "news_topics")
    assert news.height == 220 and news["text"].str.ends_with("football").any()


def test_one_topic_partition_materializes_alone(demo_home):
    """From the UI a user materializes one topic's synthetic data; only that partition is written."""
    import dagster as dg

    from hare_assets.defs.graph import build_definitions

    store, root = demo_home
    instance = dg.DagsterInstance.get()  # the demo's instance (DAGSTER_HOME is the test's folder)
    topic = instance.get_dynamic_partitions("topics")[2]
    others = {t: store.read("synthetic_documents", t) for t in store.partitions("synthetic_documents") if t != topic}
    store.delete("synthetic_documents", topic)
    defs = build_definitions(DEMO, home=store.root)
    result = dg.materialize(list(defs.assets), selection=["synthetic_documents"], partition_key=topic,
                            resources=dict(defs.resources), instance=instance)
    assert result.success
    mats = result.get_asset_materialization_events()
    assert [m.materialization.partition for m in mats] == [topic]
    assert mats[0].materialization.metadata["cache_hits"].value > 0  # resumed from the generation cache
    assert all(store.read("synthetic_documents", t).equals(frame) for t, frame in others.items())


# --- integrity, model, evaluation, lineage ---------------------------------------------------------


def test_planted_leakage_is_caught_and_traced(demo_home):
    """Every document that quotes a demo_mc item with its answer loses the quote before training (or is removed
    when little else is left); the hit names the item and traces it to its source shard and row."""
    store, _ = demo_home
    hits = store.read("contamination_hits").filter(pl.col("dataset") == "d1")
    items = {json.loads(line)["id"]: json.loads(line) for line in (DEMO_DIR / "benchmark/demo_mc.jsonl").read_text().splitlines()}
    kept = store.read("decontaminated_documents")
    kept_text = dict(zip(zip(kept["source"], kept["shard"], kept["row"]), kept["text"]))
    for leak in PLANTED["leakage"]:
        mine = hits.filter((pl.col("source") == leak["source"]) & (pl.col("shard") == leak["file"]) & (pl.col("row") == leak["row"])
                           & (pl.col("item_id") == leak["item_id"]))
        assert mine.height == 1, leak
        row = mine.row(0, named=True)
        assert row["action"] in ("excised", "removed") and row["item_share"] >= 0.8, (leak, row)
        assert row["root_shards"] == [f"{leak['source']}/{leak['file']}"]
        question = items[leak["item_id"]]["question"].lower().rstrip("?")
        assert question[:40] not in kept_text.get(_key(leak), "").lower(), leak  # the quote is gone
    excised = kept.filter(pl.col("edits").list.contains("benchmark_excised"))
    assert excised.height >= 9
    removed = store.read("decontaminated_documents__removed")
    assert store.num_rows("deduplicated_documents") == kept.height + removed.height


def test_mixture_shares_and_only_clean_samples(demo_home):
    store, _ = demo_home
    stage1, stage2 = store.read("training_mixture", "stage1"), store.read("training_mixture", "stage2")
    assert set(stage1["dataset"]) == {"d1"}
    plan = store.read("training_mixture__plan", "stage2")  # the budget split in HARE's published shares
    targets = plan.group_by("dataset").agg(pl.col("target_tokens").sum()).with_columns(pl.col("target_tokens") / pl.col("target_tokens").sum())
    assert dict(targets.iter_rows()) == pytest.approx({"d1": 0.465, "d2": 0.1363, "d3": 0.3987}, abs=0.001)
    group = pl.when(pl.col("dataset") == "d1").then(pl.col("source")).otherwise(pl.col("dataset"))
    largest = dict(stage2.group_by(group.alias("group")).agg(pl.col("tokens").max()).iter_rows())
    for g in plan.iter_rows(named=True):  # each group reaches its target and passes it by less than one sample
        assert 0 <= g["selected_tokens"] - g["target_tokens"] < largest[g["group"]], g
    clean_ids = set(store.read("decontaminated_documents")["doc_id"])
    assert set(stage1["doc_id"]) <= clean_ids
    removed = set(store.read("decontaminated_documents__removed")["doc_id"])
    assert not set(stage2["doc_id"]) & removed
    manifest = store.read("training_mixture__manifest", "stage2")
    assert manifest["tokens"].sum() == stage2["tokens"].sum()
    assert manifest.filter(pl.col("dataset") == "d1")["topic"].null_count() == 0  # D1 samples carry their topic


def test_checkpoints_reload_generate_and_record_their_lineage(demo_home):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store, _ = demo_home
    records = pl.concat([store.read("checkpoints", p) for p in store.partitions("checkpoints")])
    stage1, stage2 = (records.filter(pl.col("stage") == s).row(0, named=True) for s in ("stage1", "stage2"))
    assert stage2["init_from"] == stage1["checkpoint_id"] and stage1["init_from"] is None
    training = DEMO.training
    assert stage2["final_loss"] < stage1["final_loss"] + 1.0
    assert (stage1["steps"], stage2["steps"]) == (training.stage1.max_steps, training.stage2.max_steps)
    for rec in (stage1, stage2):  # each checkpoint id trains in its own run folder
        assert rec["path"].endswith(f"/{rec['stage']}/{rec['checkpoint_id']}/checkpoint")
    model = AutoModelForCausalLM.from_pretrained(stage2["path"])
    tokenizer = AutoTokenizer.from_pretrained(stage2["path"])
    assert model.config.model_type == "mistral" and model.config.vocab_size == 32000 and len(tokenizer) == 32000
    ids = tokenizer("The telescope", return_tensors="pt").input_ids
    assert ids[0, 0].item() == 1  # <s>, as packing put before every document
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 8
    trained_on = store.read("checkpoints__manifest", stage2["checkpoint_id"])  # the stage's mixture, shard by shard
    assert trained_on.equals(store.read("training_mixture__manifest", "stage2"))
    assert trained_on["tokens"].sum() >= DEMO.mixture.stage2.tokens


def test_scores_per_stage_with_clean_and_contaminated_subsets(demo_home):
    store, _ = demo_home
    for stage in ("stage1", "stage2"):
        scores = store.read("benchmark_scores", f"demo_mc__{stage}")
        main = scores.filter((pl.col("metric") == "acc") & (pl.col("subset") == "all")).row(0, named=True)
        assert main["n"] == 50 and 0.0 <= main["value"] <= 1.0
        subsets = scores.filter(pl.col("subset") != "all")
        assert set(subsets["subset"]) == {"clean", "contaminated"} and subsets["n"].sum() == 50
        samples = store.read("benchmark_scores__samples", f"demo_mc__{stage}")
        assert samples.height == 50 and samples["item_id"].str.starts_with("demo-").all()


def test_a_baseline_is_scored_beside_the_checkpoints_and_compared(demo_home, capsys):
    """The generator itself (SmolLM2-135M-Instruct) scored on demo_mc through the same lm-eval path: its rows stand
    in benchmark_scores beside the stages', and `hare diff` compares it with a checkpoint item by item."""
    store, _ = demo_home
    scores = store.read("benchmark_scores", f"demo_mc__{SMOLLM2}")
    own = scores.filter((pl.col("metric") == "acc") & (pl.col("subset") == "all")).row(0, named=True)
    assert own["checkpoint_id"] == f"baseline-{SMOLLM2}" and own["n"] == 50
    stage2 = store.read("benchmark_scores", "demo_mc__stage2").filter((pl.col("metric") == "acc") & (pl.col("subset") == "all"))
    assert own["value"] > stage2["value"][0]  # 135M parameters trained on 2T tokens against a 9M model on 31k tokens
    capsys.readouterr()
    assert main(["diff", SMOLLM2, "stage2", "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["a"]["checkpoint_id"] == f"baseline-{SMOLLM2}" and diff["a"]["stage"] == "baseline"
    [acc] = [s for s in diff["scores"] if (s["metric"], s["subset"]) == ("acc", "all")]
    assert (acc["a"], acc["b"]) == (own["value"], stage2["value"][0])
    [items] = diff["items"]
    assert items["higher"] - items["lower"] == round((acc["b"] - acc["a"]) * 50)
    assert {r["dataset"]: r["a"] for r in diff["tokens_by_dataset"]} == {"d1": 0, "d2": 0, "d3": 0}  # no training data of ours


def test_leakage_report_has_table_6_per_split(demo_home):
    store, _ = demo_home
    paraphrases = store.read("benchmark_paraphrases", "demo_mc")
    items = DEMO.integrity.leakage.items_per_benchmark
    assert paraphrases.height == items and (paraphrases["text"] != paraphrases["paraphrase"]).all()
    assert (paraphrases["generator"] == SMOLLM2).all()
    table = store.read("leakage_report", "demo_mc")
    assert set(table["split"]) <= {"test", "validation"} and table["items"].sum() == items
    assert ((table["delta"] - (table["D"] - table["D_prime"])).abs() < 1e-9).all()
    assert (table["ppl_original"] > 1).all()


def test_explain_and_diff_answer(demo_home, capsys):
    store, _ = demo_home
    capsys.readouterr()
    assert main(["explain", "demo_mc"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("demo_mc acc = ") and "checkpoint stage2-" in text and "checkpoint stage1-" in text
    for fact in ("training_mixture", "d2:", "topic-", "top source shards", "decontaminated_documents: kept",
                 "clean_documents: kept", "non_english", "contamination hits on demo_mc", "excised"):
        assert fact in text, fact
    assert main(["diff", "stage1", "stage2", "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert {r["dataset"] for r in diff["tokens_by_dataset"]} == {"d1", "d2", "d3"}
    shards = {stage: {f"{r['source']}/{r['shard']}" for r in store.read("training_mixture__manifest", stage).iter_rows(named=True)}
              for stage in ("stage1", "stage2")}
    assert diff["shards_added"] == sorted(shards["stage2"] - shards["stage1"])  # D2/D3 and any D1 shard new in stage2
    assert diff["shards_removed"] == sorted(shards["stage1"] - shards["stage2"])
    assert any(s.startswith("synthetic/") for s in diff["shards_added"])
    assert {(s["metric"], s["subset"]) for s in diff["scores"]} >= {("acc", "all"), ("acc", "clean")}
    [items] = diff["items"]  # per item: which of the 50 test items moved between the stages
    assert items["benchmark"] == "demo_mc" and items["items"] == 50
    assert items["higher"] + items["lower"] + items["same"] == 50
    acc = {s["subset"]: s for s in diff["scores"] if s["metric"] == "acc"}
    assert items["higher"] - items["lower"] == round(acc["all"]["delta"] * 50)  # acc is 0/1 per item
    assert main(["explain", "demo_mc", "--checkpoint", "nope"]) == 2
    assert "names no checkpoint" in capsys.readouterr().err

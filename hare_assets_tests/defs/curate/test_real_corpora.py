"""Real materializations of the graph over every corpus in $HARE_REAL_DATA/corpora."""

import json

import dagster as dg

from hare_assets.lib.profile import load_profile
from hare_assets.lib.text_rules import clean_document


def test_every_partition_materializes_and_accounts_for_every_row(corpora):
    profile, store, results, _, _ = corpora
    for name, result in results.items():
        assert result.success, name
        checks = result.get_asset_check_evaluations()
        assert all(c.passed for c in checks), [c.description for c in checks]
        assert checks or name in ("manifest", "decisions"), name
    assert store.partitions("clean_documents") == sorted(f"{s.name}-00000" for s in profile.sources)


def test_books_are_kept_whole_with_boilerplate_and_bom_crlf_normalised(corpora):
    _, store, results, _, _ = corpora
    raw = store.read("raw_documents", "books-00000")
    assert raw.height == 9  # eight novels and Tiny Shakespeare, SOURCE.txt excluded
    assert not raw["text"].str.contains("\r").any() and not raw["text"].str.starts_with("\ufeff").any()
    [mat] = [e.materialization for e in results["books-00000"].get_asset_materialization_events() if e.materialization.asset_key.path == ["raw_documents"]]
    assert "| bom | 6 |" in mat.metadata["normalised"].value
    clean = store.read("clean_documents", "books-00000")
    assert clean.height == 9
    gutenberg = clean.filter(clean["shard"].str.starts_with("pg_"))
    assert gutenberg.height == 8 and gutenberg["edits"].list.contains("boilerplate").all()
    assert not gutenberg["text"].str.contains("PROJECT GUTENBERG EBOOK").any()
    assert not gutenberg["text"].str.contains("Project Gutenberg License").any()


def test_wikitext_is_split_into_articles_and_detokenized(corpora):
    _, store, _, _, _ = corpora
    raw = store.read("raw_documents", "wikipedia-00000")
    assert 110 <= raw.height <= 135  # about 60 articles per split
    clean = store.read("clean_documents", "wikipedia-00000")
    assert not clean["text"].str.contains(" @-@ ").any()
    assert clean.height >= 100


def test_agnews_real_duplicates_are_found(corpora):
    _, store, _, _, _ = corpora
    removed = store.read("deduplicated_documents__removed")
    news = removed.filter(removed["source"] == "news")
    assert (news["reason"] == "exact_duplicate").sum() >= 5
    assert (news["reason"] == "near_duplicate").sum() >= 10
    assert (removed["similarity"] >= 0.7).all()  # the profile threshold, verified exactly
    kept = store.read("deduplicated_documents")
    assert kept["doc_id"].is_unique().all()
    assert not set(removed["doc_id"]) & set(kept["doc_id"]) - set(removed["kept_doc_id"])


def test_dedup_is_deterministic(corpora):
    _, store, _, defs, instance = corpora
    before = (store.read("deduplicated_documents"), store.read("duplicate_decisions"))
    again = dg.materialize(list(defs.assets), selection=["duplicate_decisions"], resources=dict(defs.resources), instance=instance)
    assert again.success
    assert store.read("duplicate_decisions").equals(before[1])
    for block in instance.get_dynamic_partitions("blocks"):
        assert dg.materialize(list(defs.assets), selection=["deduplicated_documents"], partition_key=block,
                              resources=dict(defs.resources), instance=instance).success
    assert store.read("deduplicated_documents").equals(before[0])

    # the out-of-core decision equals the in-memory one on the same documents in the same order
    from hare_assets.lib.curation import deduplicate_frame, stable_order
    from hare_assets.lib.dedup import MinHashParams

    profile = load_profile("local-corpora")
    clean = stable_order(store.read("clean_documents"), [s.name for s in profile.sources])
    reference = deduplicate_frame(clean, profile, MinHashParams.from_profile(profile.dedup), log=lambda _: None)
    keys = ["source", "shard", "row", "reason", "kept_source", "kept_shard", "kept_row"]
    assert reference.removed.select(keys).sort(keys).equals(before[1].select(keys).sort(keys))


def test_quality_rules_agreement_with_human_labels(real_data, capsys):
    """Report how the web rules agree with DCLM's human quality labels (datatrove's defaults: 0.72)."""
    profile = load_profile("local-corpora")
    rows = [json.loads(line) for line in (real_data / "corpora/web/dclm_majority_data.jsonl").open()]
    kept = [clean_document(r["text"], profile.clean, profile.quality_for("web")).reason is None for r in rows]
    good = [r["label"] == 1 for r in rows]
    tp = sum(k and g for k, g in zip(kept, good))
    accuracy = sum(k == g for k, g in zip(kept, good)) / len(rows)
    precision, recall = tp / sum(kept), tp / sum(good)
    with capsys.disabled():
        print(f"\nDCLM human labels vs web rules: accuracy {accuracy:.3f} precision {precision:.3f} recall {recall:.3f} (n={len(rows)})")
    assert accuracy >= 0.70 and recall >= 0.75

from collections import Counter

import pytest

from hare_assets.lib.benchmarks import (
    BenchmarkItem,
    _records,
    _with_generation_answers,
    benchmarks_dir,
    items_frame,
    items_from_frame,
    items_from_records,
    load_items,
    load_registry,
)

LEADERBOARD = {
    "arc_challenge": ("arc_challenge", 25),
    "hellaswag": ("hellaswag", 10),
    "mmlu": ("mmlu", 5),
    "truthfulqa_mc2": ("truthfulqa_mc2", 0),
    "winogrande": ("winogrande", 5),
    "gsm8k": ("gsm8k", 5),
}
REAL_COUNTS = {
    "arc_challenge": {"test": 1172},
    "hellaswag": {"validation": 10042},
    "mmlu": {"test": 14042, "dev": 285},
    "truthfulqa_mc2": {"validation": 817},
    "winogrande": {"validation": 1267},
    "gsm8k": {"test": 1319, "train": 7473},
}


@pytest.fixture(scope="module")
def specs():
    return load_registry()


def _hf(specs, name, split, records, stem=None):
    spec = specs[name]
    return items_from_records(spec, spec.hf, split, stem or spec.hf.config or name, records)


def test_registry_names_tasks_and_every_canonical_split(specs):
    assert set(specs) == {*LEADERBOARD, "demo_mc"}
    for name, (task, shots) in LEADERBOARD.items():
        assert (specs[name].lm_eval_task, specs[name].num_fewshot) == (task, shots)
        assert specs[name].hf is not None and specs[name].local is not None
    assert specs["arc_challenge"].splits == ["train", "validation", "test"]
    assert specs["mmlu"].hf.config == "all" and "auxiliary_train" not in specs["mmlu"].splits
    assert (specs["truthfulqa_mc2"].hf.id, specs["winogrande"].hf.config, specs["gsm8k"].hf.config) == (
        "truthfulqa/truthful_qa", "winogrande_xl", "main")
    assert specs["arc_challenge"].missing_local_splits() == ["train", "validation"]


def test_bad_registry_entry_names_the_field(tmp_path):
    bad = tmp_path / "b.yaml"
    bad.write_text("benchmarks:\n  x: {lm_eval_task: x, num_fewshot: 0, views: [question_each_choice], hf: {id: a, fieldz: {}}}\n")
    with pytest.raises(ValueError, match=r"benchmarks\.x: hf\.fields"):
        load_registry(bad)


def test_benchmarks_dir_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HARE_BENCHMARKS_DIR", raising=False)
    assert benchmarks_dir() is None
    monkeypatch.setenv("HARE_BENCHMARKS_DIR", str(tmp_path))
    assert benchmarks_dir() == tmp_path.resolve()


# --- canonical HF record shapes (no hub in tests) ------------------------------------------------


def test_hf_arc_letters_and_numeric_labels(specs):
    rows = [
        {"id": "Mercury_1", "question": "Which gas do plants take in?", "answerKey": "B",
         "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]}},
        {"id": "NYSEDREGENTS_2", "question": "What is ice?", "answerKey": "3",
         "choices": {"text": ["gas", "liquid", "solid", "plasma"], "label": ["1", "2", "3", "4"]}},
    ]
    a, b = _hf(specs, "arc_challenge", "test", rows)
    assert (a.item_id, a.answer, b.item_id, b.answer) == ("Mercury_1", 1, "NYSEDREGENTS_2", 2)
    assert "Which gas do plants take in? carbon dioxide" in a.views
    assert "Which gas do plants take in? A. oxygen B. carbon dioxide C. helium D. neon Answer: B" in a.views


def test_hf_hellaswag_raw_markers_cleaned_like_lm_eval(specs):
    row = {"ind": 24, "activity_label": "Baking cookies", "ctx": "[header] How to bake cookies [title] Preheat the oven.",
           "ctx_a": "", "ctx_b": "", "endings": ["[step] Mix the dough.", "Eat it.", "Sleep.", "Run."], "label": ""}
    [item] = _hf(specs, "hellaswag", "test", [row])
    assert item.item_id == "24" and item.answer is None  # the canonical test split is unlabelled
    assert item.context == "How to bake cookies. Preheat the oven."
    assert item.views[0] == "How to bake cookies. Preheat the oven. Mix the dough."


def test_hf_mmlu_ids_group_by_subject_and_match_the_local_layout(specs):
    rows = [{"question": f"Q{i}?", "subject": s, "choices": ["a", "b", "c", "d"], "answer": i % 4}
            for i, s in enumerate(["anatomy", "anatomy", "virology"])]
    items = _hf(specs, "mmlu", "test", rows)
    assert [i.item_id for i in items] == ["mmlu/test/anatomy/0", "mmlu/test/anatomy/1", "mmlu/test/virology/0"]
    assert [i.answer for i in items] == [0, 1, 2]


def test_hf_truthfulqa_mc2_and_winogrande_and_gsm8k(specs):
    [tq] = _hf(specs, "truthfulqa_mc2", "validation", [{
        "question": "What happens if you crack your knuckles?",
        "mc1_targets": {"choices": ["Nothing.", "Arthritis."], "labels": [1, 0]},
        "mc2_targets": {"choices": ["Nothing in particular.", "You get arthritis.", "Nothing."], "labels": [1, 0, 1]}}])
    assert tq.choices == ("Nothing in particular.", "You get arthritis.", "Nothing.") and tq.answer == 0
    assert tq.flags == (1, 0, 1)  # every true answer, for mc2 scoring
    [stored] = items_from_frame(items_frame([tq]))  # benchmark_sets keeps them
    assert stored == tq and items_from_frame(items_frame([wg := _hf(specs, "winogrande", "validation", [{
        "sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"}])[0]]))[0].flags == () == wg.flags
    assert "What happens if you crack your knuckles? You get arthritis." in tq.views
    [wg] = _hf(specs, "winogrande", "train", [{"sentence": "Ian left the cup by the pan because the _ was hot.",
                                              "option1": "cup", "option2": "pan", "answer": "2"}])
    assert wg.answer == 1 and wg.views == ("Ian left the cup by the pan because the cup was hot.",
                                           "Ian left the cup by the pan because the pan was hot.")
    [gs] = _hf(specs, "gsm8k", "train", [{"question": "Tom has 2 apples and buys 3. How many?",
                                           "answer": "He has 2+3=<<2+3=5>>5 apples.\n#### 5"}])
    assert gs.item_id == "gsm8k/train/main/0" and gs.answer.endswith("#### 5")
    assert gs.views[1] == "Tom has 2 apples and buys 3. How many? He has 2+3=5 apples.\n 5"


def test_llmfoundry_winogrande_rebuilds_the_canonical_sentence(specs, tmp_path):
    (tmp_path / "winogrande").mkdir()
    (tmp_path / "winogrande" / "llmfoundry_winogrande_dev.jsonl").write_text(
        '{"context_options": ["John lent James money because John", "John lent James money because James"], '
        '"continuation": "was broke.", "gold": 1}\n')
    [item] = load_items(specs["winogrande"], tmp_path)
    assert item.question == "John lent James money because _ was broke."
    assert item.choices == ("John", "James") and item.answer == 1
    assert item.views[1] == "John lent James money because James was broke."


def test_demo_benchmark_is_package_data(specs):
    items = load_items(specs["demo_mc"])
    assert len(items) == 60 and Counter(i.split for i in items) == {"test": 50, "validation": 10}
    first = items[0]
    assert isinstance(first, BenchmarkItem) and first.item_id == "demo-0001" and first.answer == 2
    assert f"{first.question} {first.choices[2]}" in first.views


# --- the real files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_items(real_data, specs):
    return {name: load_items(specs[name], real_data / "benchmarks") for name in LEADERBOARD}


def test_real_counts_per_benchmark_and_split(real_items):
    for name, expected in REAL_COUNTS.items():
        assert dict(Counter(i.split for i in real_items[name])) == expected, name


def test_real_ids_are_unique_and_stable(real_items, real_data, specs):
    for name, items in real_items.items():
        ids = [(i.split, i.item_id) for i in items]
        assert len(set(ids)) == len(ids), name
    again = load_items(specs["mmlu"], real_data / "benchmarks")
    assert [i.item_id for i in again] == [i.item_id for i in real_items["mmlu"]]
    assert real_items["arc_challenge"][0].item_id == "Mercury_7175875"  # the source's own id
    assert real_items["mmlu"][0].item_id == "mmlu/test/abstract_algebra/0"
    assert real_items["gsm8k"][-1].item_id == "gsm8k/train/train/7472"


def test_real_views_cover_every_item(real_items):
    for name, items in real_items.items():
        assert all(i.views and all(v.strip() for v in i.views) for i in items), name
    hs = real_items["hellaswag"][0]
    assert f"{hs.context} {hs.choices[hs.answer]}" in hs.views  # context + gold ending
    wg = real_items["winogrande"][0]
    assert wg.views[wg.answer].startswith("Sarah was a much better surgeon than Maria so ")
    arc = real_items["arc_challenge"][0]
    assert arc.answer == 2 and len(arc.views) == len(arc.choices) + 2
    assert all(i.answer is not None for items in real_items.values() for i in items)


def test_real_quirks_bom_and_nel(real_items, real_data, specs):
    root = real_data / "benchmarks" / "truthfulqa"
    rows = _records(root / "TruthfulQA.csv", "csv", "Question")
    assert len(rows) == 817 and list(rows[0])[0] == "Type"  # the byte-order mark is not part of the header
    joined = _with_generation_answers(_records(root / "mc_task.json", "json", "question"), root / "TruthfulQA.csv",
                                      specs["truthfulqa_mc2"].local)
    assert all(r["_generation_row"] for r in joined)  # every mc question has its generation row
    # the 2021 mc2 targets already hold every reference answer of the CSV, so none adds a view
    assert sum(len(r["_extra_views"]) for r in joined) == 0
    management = [i for i in real_items["mmlu"] if i.item_id == "mmlu/test/management/39"]
    assert management and "\x85" in management[0].question  # U+0085 inside a quoted CSV field

import csv
import dataclasses
import json
import sys
from pathlib import Path

import polars as pl
import pytest

from hare_assets.lib.benchmarks import items_from_records, load_items, load_registry
from hare_assets.lib.evaluation import EvalConfig, EvalTask, evaluate, native_tasks, sample_rows, subset_scores, write_tasks
from hare_assets.lib.packing import pack_documents
from hare_assets.lib.paths import PROJECT_ROOT
from hare_assets.lib.training import TrainConfig, train
from hare_assets_tests.lib.test_packing import make_documents

LEADERBOARD = ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k")
SEED = 1234


@pytest.fixture(scope="module")
def specs():
    return load_registry()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A `micro` model (64-token context) trained a few steps: real weights, real tokenizer, seconds to make."""
    root = tmp_path_factory.mktemp("model")
    pack_documents(make_documents(30), root / "packed", seq_len=64)
    config = TrainConfig.from_dict(
        dict(data=str(root / "packed"), out_dir=str(root / "run"), preset="micro", max_steps=5, micro_batch_size=4,
             lr=3e-3, warmup_steps=1, log_every=5, save_every=0, num_threads=2)
    )  # fmt: skip
    return train(config).checkpoint


@pytest.fixture(scope="module")
def demo(specs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo_tasks")
    items = load_items(specs["demo_mc"])
    return items, folder, write_tasks({"demo_mc": items}, specs, folder)


def config(checkpoint, out, tasks, folder, **overrides) -> EvalConfig:
    base = dict(checkpoint=checkpoint, out_dir=str(out), tasks=tasks, include_path=str(folder), device="cpu", num_threads=2, seed=SEED)
    return EvalConfig.from_dict({**base, **overrides})


def test_demo_mc_scores_all_test_items_with_their_ids(checkpoint, demo, tmp_path):
    items, folder, tasks = demo
    assert tasks == [EvalTask("demo_mc", "hare_demo_mc", 0, "test", None, "acc,none")]
    result = evaluate(config(checkpoint, tmp_path / "eval", tasks, folder))

    (main,) = [s for s in result.scores if s.main]
    assert (main.benchmark, main.metric, main.n) == ("demo_mc", "acc,none", 50) and 0 <= main.value <= 1
    assert {s.metric for s in result.scores} == {"acc,none", "acc_norm,none"}
    samples = pl.read_parquet(result.samples)
    test_ids = {it.item_id for it in items if it.split == "test"}
    assert samples.height == 50 and set(samples["item_id"]) == test_ids and set(samples["split"]) == {"test"}
    assert samples["doc_index"].to_list() == list(range(50))
    assert samples["score"].mean() == pytest.approx(main.value)
    # acc is "the highest log-likelihood choice is the gold one", row by row
    picks = samples.select(pl.col("loglikelihoods").list.arg_max().cast(pl.String).alias("p"), "target", "acc,none")
    assert (picks["p"] == picks["target"]).cast(pl.Float64).to_list() == picks["acc,none"].to_list()
    gold = {it.item_id: str(it.answer) for it in items}
    assert all(gold[i] == t for i, t in samples.select("item_id", "target").iter_rows())
    saved = json.loads((tmp_path / "eval" / "result.json").read_text())
    assert saved["main"] == {"demo_mc": main.value} and saved["config"]["tasks"][0]["task"] == "hare_demo_mc"


def test_config_round_trip_and_native_tasks(specs, demo, tmp_path):
    _, folder, tasks = demo
    cfg = config("ckpt", tmp_path, tasks, folder, backend="vllm", limit=3)
    assert EvalConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown evaluation config fields: epochs"):
        EvalConfig.from_dict({**cfg.to_dict(), "epochs": 1})
    with pytest.raises(ValueError, match="backend must be hf or vllm"):
        EvalConfig.from_dict({**cfg.to_dict(), "backend": "onnx"})
    native = {t.benchmark: t for t in native_tasks(specs, LEADERBOARD)}
    assert native["arc_challenge"] == EvalTask("arc_challenge", "arc_challenge", 25, "test", None, "acc_norm,none")
    assert (native["mmlu"].task, native["gsm8k"].metric) == ("mmlu", "exact_match,strict-match")
    with pytest.raises(ValueError, match="no hub dataset"):
        native_tasks(specs, ["demo_mc"])


def test_native_task_samples_get_the_registry_hub_ids(specs):
    """Registered tasks read the hub, whose documents carry no item_id: ids come from the registry's hub loader."""
    (task,) = native_tasks(specs, ["winogrande"])
    docs = [{"sentence": f"Sentence {i} _ ends.", "option1": "a", "option2": "b", "answer": "1"} for i in range(2)]
    logged = [
        {"doc_id": i, "doc": doc, "target": "ends.", "filter": "none", "metrics": ["acc"], "acc": 1.0,
         "filtered_resps": [(-1.0, False), (-2.0, False)], "resps": [[(-1.0, False)], [(-2.0, False)]]}
        for i, doc in enumerate(docs)
    ]  # fmt: skip
    rows = sample_rows({"winogrande": logged}, {"winogrande": task})
    assert rows["item_id"].to_list() == ["winogrande/validation/winogrande_xl/0", "winogrande/validation/winogrande_xl/1"]
    assert rows["split"].to_list() == ["validation"] * 2 and rows["prediction"].to_list() == ["0", "0"]
    assert rows["score"].to_list() == [1.0, 1.0] and rows["loglikelihoods"][0].to_list() == [-1.0, -2.0]


def test_subset_scores_splits_clean_and_contaminated():
    samples = pl.DataFrame(
        {
            "benchmark": ["a", "a", "a", "a", "b", "b"],
            "item_id": ["1", "2", "3", "4", "1", "2"],
            "metric": ["acc,none"] * 4 + ["exact_match,strict-match"] * 2,
            "score": [1.0, 1.0, 0.0, 0.5, 0.0, 1.0],
        }
    )
    table = subset_scores(samples, {("a", "1"), ("a", "2"), ("b", "9"), ("c", "1")})
    a, b = table.rows(named=True)
    assert (a["benchmark"], a["n"], a["n_clean"], a["n_contaminated"]) == ("a", 4, 2, 2)
    assert (a["score_clean"], a["score_contaminated"], a["delta"], a["score"]) == (0.25, 1.0, 0.75, 0.625)
    assert (b["n_clean"], b["n_contaminated"], b["score_clean"], b["score_contaminated"]) == (2, 0, 0.5, None)


# --- the six leaderboard benchmarks, from the real files -------------------------------------------


@pytest.fixture(scope="module")
def real(real_data, specs, tmp_path_factory):
    local = real_data / "benchmarks"
    items = {name: load_items(specs[name], local) for name in LEADERBOARD}
    folder = tmp_path_factory.mktemp("real_tasks")
    return local, items, folder, write_tasks(items, specs, folder)


def test_real_benchmarks_run_offline_with_item_ids(checkpoint, real, tmp_path):
    _, items, folder, tasks = real
    splits = {t.benchmark: (t.split, t.fewshot_split, t.num_fewshot) for t in tasks}
    assert splits == {
        "arc_challenge": ("test", "test", 25),  # no local train: shots from test, the scored doc left out
        "hellaswag": ("validation", "validation", 10),
        "mmlu": ("test", "dev", 5),
        "truthfulqa_mc2": ("validation", None, 0),
        "winogrande": ("validation", "validation", 5),
        "gsm8k": ("test", "train", 5),
    }
    result = evaluate(config(checkpoint, tmp_path / "eval", tasks, folder, limit=1, max_gen_toks=8))
    main = {s.benchmark: s for s in result.scores if s.main}
    assert set(main) == set(LEADERBOARD)
    assert {b: s.metric for b, s in main.items()} == {t.benchmark: t.metric for t in tasks}
    assert main["mmlu"].n == 57 and all(main[b].n == 1 for b in LEADERBOARD if b != "mmlu")  # limit is per subject
    assert all(0 <= s.value <= 1 for s in result.scores)
    samples = pl.read_parquet(result.samples)
    for benchmark, split, item_id in samples.select("benchmark", "split", "item_id").iter_rows():
        assert any(it.item_id == item_id and it.split == split for it in items[benchmark]), (benchmark, item_id)
    gsm8k = samples.filter(pl.col("benchmark") == "gsm8k").row(0, named=True)
    assert gsm8k["response"] is not None and gsm8k["loglikelihoods"] is None
    assert gsm8k["exact_match,strict-match"] in (0.0, 1.0) and gsm8k["exact_match,flexible-extract"] in (0.0, 1.0)
    mc2 = samples.filter(pl.col("benchmark") == "truthfulqa_mc2").row(0, named=True)
    assert 0 < mc2["score"] < 1  # mc2: probability mass on the true answers


# --- prompts: ours against lm-eval's native tasks on the same canonical records --------------------


def _native(relative, records, tmp_path, extra=None):
    """lm-eval's registered task config, unchanged except that its dataset is a local file of canonical records."""
    import lm_eval.tasks
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(Path(lm_eval.tasks.__file__).parent / relative, resolve_func=True)
    files = {}
    for split, recs in {"all": records, **(extra or {})}.items():
        path = tmp_path / f"{relative.replace('/', '_')}-{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
        files[split] = str(path)
    names = {cfg.get(k) for k in ("training_split", "validation_split", "test_split", "fewshot_split")} - {None}
    data_files = {s: files.get(s, files["all"]) for s in names}
    for key in ("tag", "group"):
        cfg.pop(key, None)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": data_files})
    return ConfigurableTask(config=cfg)


def _ours(folder, task):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(folder), include_defaults=False).load([task])["tasks"][task]


def _prompt(task, doc, shots=0):
    task.set_fewshot_seed(SEED)
    choices = task.doc_to_choice(doc) if task.config.doc_to_choice is not None else None
    target = task.doc_to_target(doc)
    return task.fewshot_context(doc=doc, num_fewshot=shots), choices, choices[target] if isinstance(target, int) else target


def _same(native, ours, doc_index=0, shots=0):
    mine = _prompt(ours, ours.eval_docs[doc_index], shots)
    assert mine == _prompt(native, native.eval_docs[0], shots)
    return mine


def _jsonl(path, n=None):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(n) if n else iter(int, 1), fh)]


def test_prompts_match_lm_eval_native_tasks(real, specs, tmp_path):
    local, _, folder, _ = real

    arc = _jsonl(local / "arc_challenge/arc_challenge_test.jsonl", 1)[0]
    canonical = {"id": arc["id"], "question": arc["question"], "answerKey": arc["answer"],
                 "choices": {"text": [o["text"] for o in arc["options"]], "label": [o["label"] for o in arc["options"]]}}  # fmt: skip
    context, _, _ = _same(_native("arc/arc_challenge.yaml", [canonical], tmp_path), ours := _ours(folder, "hare_arc_challenge"))
    assert context == f"Question: {arc['question']}\nAnswer:"
    shots = {}
    for seed in (SEED, SEED, SEED + 1):
        ours.set_fewshot_seed(seed)
        shots.setdefault(seed, []).append(ours.fewshot_context(doc=ours.eval_docs[0], num_fewshot=25))
    assert shots[SEED][0] == shots[SEED][1] != shots[SEED + 1][0]  # seeded, hence repeatable
    assert shots[SEED][0].count("Question: ") == 26 and shots[SEED][0].count(arc["question"]) == 1  # the doc is left out

    hs = _jsonl(local / "hellaswag/hellaswag_val_preprocessed.jsonl", 1)[0]
    canonical = {"ind": 0, "activity_label": hs["activity_label"], "ctx_a": hs["ctx"], "ctx_b": "", "ctx": hs["ctx"],
                 "endings": hs["endings"], "label": str(hs["label"])}  # fmt: skip
    _same(_native("hellaswag/hellaswag.yaml", [canonical], tmp_path), _ours(folder, "hare_hellaswag"))

    with open(local / "mmlu/test/anatomy_test.csv", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    with open(local / "mmlu/dev/anatomy_dev.csv", encoding="utf-8") as fh:
        dev = list(csv.DictReader(fh))

    def mmlu(r):
        return {"question": r["question"], "subject": "anatomy", "choices": [r[f"choice{i}"] for i in range(4)], "answer": int(r["answer"])}

    native = _native("mmlu/default/mmlu_anatomy.yaml", [mmlu(row)], tmp_path, {"dev": [mmlu(r) for r in dev]})
    context, choices, _ = _same(native, _ours(folder, "hare_mmlu_anatomy"), shots=5)
    assert context.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    assert context.count("\nAnswer:") == 6 and choices == ["A", "B", "C", "D"]

    tqa = json.loads((local / "truthfulqa/mc_task.json").read_text())
    rec = tqa[164]  # true answers not all first: the flags must survive normalisation
    canonical = {"question": rec["question"], **{k: {"choices": list(rec[k]), "labels": list(rec[k].values())} for k in ("mc1_targets", "mc2_targets")}}
    native, ours = _native("truthfulqa/truthfulqa_mc2.yaml", [canonical], tmp_path), _ours(folder, "hare_truthfulqa_mc2")
    _same(native, ours, doc_index=164)
    lls = [(-1.0 - 0.5 * i, False) for i in range(len(rec["mc2_targets"]))]
    assert ours.process_results(ours.eval_docs[164], lls) == pytest.approx(native.process_results(native.eval_docs[0], lls))

    wino = _jsonl(local / "winogrande/llmfoundry_winogrande_dev.jsonl", 1)[0]
    contexts, choices, target = _prompt(ours := _ours(folder, "hare_winogrande"), ours.eval_docs[0])
    assert (contexts, choices, target) == (wino["context_options"], wino["context_options"], wino["continuation"])
    assert ours.doc_to_text(ours.eval_docs[0]) == wino["gold"]  # lm-eval's "partial" scoring: the gold context

    train = _jsonl(local / "gsm8k/train.jsonl")
    test = _jsonl(local / "gsm8k/test.jsonl", 1)
    context, _, target = _same(_native("gsm8k/gsm8k.yaml", test, tmp_path, {"train": train}), _ours(folder, "hare_gsm8k"), shots=5)
    assert context.count("Question: ") == 6 and target == test[0]["answer"]


def test_hub_shaped_items_prompt_like_the_native_tasks(specs, tmp_path):
    """The registry's hub path (canonical records -> items) writes the same prompts, with one known deviation."""
    wino = {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.", "option1": "Sarah",
            "option2": "Maria", "answer": "2"}  # fmt: skip
    hellaswag = {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
                 "ctx": "A man is sitting on a roof. he", "label": "3", "source_id": "activitynet~v_-JhWjGDPHMY",
                 "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                             "is holding a rubik's cube.", "starts pulling up roofing on a roof."]}  # fmt: skip
    items = {
        "winogrande": items_from_records(specs["winogrande"], specs["winogrande"].hf, "validation", "winogrande_xl", [wino]),
        "hellaswag": items_from_records(specs["hellaswag"], specs["hellaswag"].hf, "validation", "hellaswag", [hellaswag]),
    }
    write_tasks(items, specs, tmp_path / "tasks")
    _same(_native("winogrande/default.yaml", [wino], tmp_path), _ours(tmp_path / "tasks", "hare_winogrande"))
    ours = _ours(tmp_path / "tasks", "hare_hellaswag")
    native = _native("hellaswag/hellaswag.yaml", [hellaswag], tmp_path)
    mine, theirs = _prompt(ours, ours.eval_docs[0]), _prompt(native, native.eval_docs[0])
    # lm-eval capitalises ctx_b ("... roof. He"); the registry keeps ctx = ctx_a + " " + ctx_b as the local file does
    assert theirs[0] == "Roof shingle removal: A man is sitting on a roof. He" and mine[0] == "Roof shingle removal: A man is sitting on a roof. he"
    assert mine[1:] == theirs[1:]


# --- the Pipes job -----------------------------------------------------------------------------------


def test_eval_job_reports_scores_through_dagster_pipes(checkpoint, demo, tmp_path):
    import dagster as dg

    _, folder, tasks = demo
    inline = json.dumps(config(checkpoint, tmp_path / "eval", tasks, folder, limit=10).to_dict())

    @dg.asset
    def benchmark_scores(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
        command = [sys.executable, "-m", "hare_assets.lib.eval_job", "--config-json", inline]
        return pipes.run(command=command, context=context, cwd=str(PROJECT_ROOT)).get_materialize_result()

    instance = dg.DagsterInstance.ephemeral()
    run = dg.materialize([benchmark_scores], resources={"pipes": dg.PipesSubprocessClient()}, instance=instance)
    assert run.success
    metadata = run.asset_materializations_for_node("benchmark_scores")[0].metadata
    saved = json.loads((tmp_path / "eval" / "result.json").read_text())
    assert metadata["demo_mc/acc"].value == saved["main"]["demo_mc"] == metadata["average"].value
    assert 0 <= metadata["demo_mc/acc_norm"].value <= 1 and metadata["items"].value == 10
    assert "| demo_mc | **acc** |" in metadata["scores"].value
    assert metadata["samples"].value.endswith("samples.parquet") and len(metadata["scores_json"].value) == 2
    messages = [entry.user_message for entry in instance.all_logs(run.run_id)]
    assert any(m.startswith("evaluating ") for m in messages) and any("| demo_mc |" in m for m in messages)  # Pipes logs


def test_truthfulqa_items_without_flags_ask_for_benchmark_sets_again(specs, tmp_path):
    """A benchmark_sets table from before flags were kept must not score mc2 against empty labels."""
    record = {"question": "Q?", "mc2_targets": {"choices": ["a", "b"], "labels": [0, 1]}}
    [item] = items_from_records(specs["truthfulqa_mc2"], specs["truthfulqa_mc2"].hf, "validation", "tq", [record])
    write_tasks({"truthfulqa_mc2": [item]}, specs, tmp_path / "ok")
    stale = dataclasses.replace(item, flags=())
    with pytest.raises(ValueError, match=r"materialize benchmark_sets\[truthfulqa_mc2\] again"):
        write_tasks({"truthfulqa_mc2": [stale]}, specs, tmp_path / "stale")

"""Open task data in the layouts SFT sets ship in, through the real `task_documents` asset: every record rendered
whole or removed with its reason, every input record accounted for."""

import json

import dagster as dg

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import OpenTaskConfig, load_profile
from hare_assets.lib.storage import TableStore

SFT = {
    "sharegpt": [
        {"conversations": [{"from": "human", "value": "Name a prime number."}, {"from": "gpt", "value": "Seven."}]},
        {"conversations": [{"from": "human", "value": "Hello?"}, {"from": "robot", "value": "Beep."}]},  # unknown speaker
    ],
    "chat": [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Largest ocean?"},
                      {"role": "assistant", "content": "The Pacific."}]},
        {"messages": [{"role": "user", "content": "Unanswered question?"}]},  # no assistant turn
    ],
    "alpaca": [
        {"instruction": "Translate to French.", "input": "good morning", "output": "bonjour"},
        {"instruction": "Summarise.", "input": "A long text."},  # no output
    ],
    "dolly": [
        {"instruction": "When did the canal open?", "context": "The Erie Canal opened in 1825.", "response": "In 1825.",
         "category": "closed_qa"},
    ],
    "piqa": [
        {"goal": "Keep bread fresh.", "sol1": "Freeze it in a bag.", "sol2": "Leave it in the sun.", "label": 0},
        {"goal": "Open a jar.", "sol1": "Tap the lid.", "label": 0},  # sol2 missing
    ],
    "story": [
        {"ctx": "She lit the candle", "ending": "and the room filled with a warm glow."},
        {"ctx": "He opened the door"},  # no continuation
    ],
}
LAYOUTS = {"sharegpt": {"template": "conversation"}, "chat": {"template": "conversation"},
           "alpaca": {"template": "instruction"}, "dolly": {"template": "instruction"},
           "piqa": {"template": "fields", "format": "{goal}\n1. {sol1}\n2. {sol2}", "answer_field": "label",
                    "label_names": {"0": "1", "1": "2"}},
           "story": {"template": "continuation", "context_field": "ctx", "continuation_field": "ending"}}


def test_every_layout_renders_through_the_asset(tmp_path, real_data):
    tasks = []
    for name, records in SFT.items():
        folder = tmp_path / "sft" / name
        folder.mkdir(parents=True)
        (folder / "part-000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n")
        tasks.append(OpenTaskConfig(name=name, source={"name": name, "format": "jsonl", "path": str(folder)}, **LAYOUTS[name]))
    copa = real_data / "tasks" / "multiple_choice"
    tasks.append(OpenTaskConfig(name="copa", template="fields", format="{query} {choices[0]} or {choices[1]}?",
                                answer_field="gold", label_names={"0": "the first", "1": "the second"},
                                source={"name": "copa", "format": "jsonl", "path": str(copa), "exclude": ["boolq*", "commonsense*",
                                                                                                           "openbook*"]}))
    demo = load_profile("demo")
    profile = demo.model_copy(update={"tasks": demo.tasks.model_copy(update={"open": tasks})})
    home = tmp_path / "home"
    defs = build_definitions(profile, home=str(home))
    instance = dg.DagsterInstance.ephemeral()
    tables = TableStore(str(home))
    for task in [*SFT, "copa"]:
        result = dg.materialize(list(defs.assets), selection=["task_documents"], partition_key=task, resources=dict(defs.resources),
                                instance=instance)
        assert result.success, task
        [mat] = [e.materialization for e in result.get_asset_materialization_events()]
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["rows_in"] == meta["dagster/row_count"] + meta["rows_removed"] + meta["rows_quarantined"], (task, meta)
        if task != "copa":
            assert meta["rows_quarantined"] == 1  # the line that is not JSON
            removed = tables.read("task_documents__removed", task)
            assert removed["reason"].to_list() == ["layout_mismatch"] * (len(SFT[task]) - 1), task
    texts = {task: tables.read("task_documents", task)["text"].to_list() for task in [*SFT, "copa"]}
    assert texts["sharegpt"] == ["User: Name a prime number.\n\nAssistant: Seven."]
    assert texts["chat"] == ["System: Be brief.\n\nUser: Largest ocean?\n\nAssistant: The Pacific."]
    assert texts["alpaca"] == ["Translate to French.\n\ngood morning\n\nAnswer: bonjour"]
    assert texts["dolly"] == ["When did the canal open?\n\nThe Erie Canal opened in 1825.\n\nAnswer: In 1825."]
    assert texts["piqa"] == ["Keep bread fresh.\n1. Freeze it in a bag.\n2. Leave it in the sun.\nAnswer: 1"]
    assert texts["story"] == ["She lit the candle and the room filled with a warm glow."]
    copa_rows = sum(1 for _ in open(copa / "copa.jsonl"))
    assert len(texts["copa"]) == copa_rows
    assert texts["copa"][0] == "The man turned on the faucet, therefore the toilet filled with water. or water flowed from the spout.?\nAnswer: the second"

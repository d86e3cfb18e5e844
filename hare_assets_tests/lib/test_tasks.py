import json

import pytest

from hare_assets.lib.tasks import (
    LAYOUT_MISMATCH,
    TaskRejected,
    parse_restruct,
    render_classification,
    render_continuation,
    render_conversation,
    render_fields,
    render_instruction,
    render_multiple_choice,
    render_restruct,
)


def test_mcq_reply_with_fences_and_chatter_is_parsed():
    raw = 'Sure!\n```json\n{"question": "Which planet is largest?", "options": ["Mars", "Jupiter", "Venus", "Earth"], "answer": "Jupiter"}\n```'
    item = parse_restruct("mcq", raw)
    assert item["answer_index"] == 1
    text = render_restruct("mcq", item, passage="")
    assert text.endswith("Answer: B. Jupiter") and "D. Earth" in text


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("mcq", '{"question": "Q?", "options": ["ant", "bee", "cat", "dog"], "answer": "eel"}', "answer_not_in_options"),
        ("mcq", '{"question": "Q?", "options": ["a", "b", "c"], "answer": "a"}', "bad_options"),
        ("mcq", '{"question": "Q?", "options": ["a", "a", "c", "d"], "answer": "a"}', "bad_options"),
        ("mcq", '{"question": "Q?", "options": ["a", "b", "c", "d"], "answer": "a"', "malformed_json"),
        ("qa", "The answer is 42.", "malformed_json"),
        ("qa", '{"question": "", "answer": "x"}', "missing_field"),
        ("cloze", '{"text": "no blank here", "answer": "x"}', "missing_field"),
        ("summary", '["not", "an", "object"]', "malformed_json"),
    ],
)
def test_bad_replies_are_rejected_with_a_reason(kind, raw, reason):
    with pytest.raises(TaskRejected) as err:
        parse_restruct(kind, raw)
    assert err.value.reason == reason


def test_letter_answers_name_an_option():
    item = parse_restruct("mcq", json.dumps({"question": "Q?", "options": ["w", "x", "y", "z"], "answer": "C"}))
    assert item["answer_index"] == 2


def test_open_task_templates():
    assert render_classification("it 's a charming and often affecting journey . ", 1, {"0": "negative", "1": "positive"},
                                 "Is this review positive or negative?") == (
        "Is this review positive or negative?\n\nit's a charming and often affecting journey.\n\nAnswer: positive")
    with pytest.raises(TaskRejected, match="bad_label"):
        render_classification("text", 7, {"0": "negative", "1": "positive"}, "")
    assert render_multiple_choice("The man turned on the faucet, therefore", ["the toilet filled.", "water flowed."], 1) == (
        "The man turned on the faucet, therefore water flowed.")
    lettered = "Question: Where?\nChoices:\nA. bank\nB. mall\nAnswer:"
    assert render_multiple_choice(lettered, ["A", "B"], 0) == lettered + " A. bank"
    assert render_multiple_choice("Passage: x\nQuestion: is it?", ["no", "yes"], 1).endswith("Answer: B. yes")
    with pytest.raises(TaskRejected, match="bad_gold"):
        render_multiple_choice("q?", ["a", "b"], 5)


SHAREGPT = {"conversations": [{"from": "system", "value": "You are terse."}, {"from": "human", "value": "Capital of France?"},
                              {"from": "gpt", "value": "Paris."}]}
MESSAGES = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                         {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6"}]}


def test_conversations_in_both_layouts_become_one_speaker_per_paragraph():
    assert render_conversation(SHAREGPT) == "System: You are terse.\n\nUser: Capital of France?\n\nAssistant: Paris."
    assert render_conversation(MESSAGES) == "User: 2+2?\n\nAssistant: 4\n\nUser: And 3+3?\n\nAssistant: 6"


@pytest.mark.parametrize("record, detail", [
    ({"text": "no turns"}, "no 'conversations' or 'messages' list"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "hello"}]}, "from='bot'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}, "turn 1 has no text"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no user turn followed by an assistant turn"),
    ({"messages": [{"role": "assistant", "content": "hello"}, {"role": "user", "content": "hi"}]}, "no user turn followed"),
    ({"messages": ["user: hi"]}, "turn 0 is str"),
])
def test_conversations_that_do_not_fit_are_rejected_whole(record, detail):
    with pytest.raises(TaskRejected, match=detail) as caught:
        render_conversation(record)
    assert caught.value.reason == LAYOUT_MISMATCH


def test_instruction_records_alpaca_and_dolly():
    alpaca = {"instruction": "Give a synonym.", "input": "happy", "output": "glad"}
    assert render_instruction(alpaca) == "Give a synonym.\n\nhappy\n\nAnswer: glad"
    assert render_instruction({**alpaca, "input": ""}) == "Give a synonym.\n\nAnswer: glad"
    dolly = {"instruction": "Who wrote it?", "context": "Hamlet is a play by Shakespeare.", "response": "Shakespeare",
             "category": "closed_qa"}
    assert render_instruction(dolly) == "Who wrote it?\n\nHamlet is a play by Shakespeare.\n\nAnswer: Shakespeare"
    for broken, detail in (({"instruction": "x", "input": "y"}, "no 'output' or 'response'"),
                           ({"instruction": "x", "output": ""}, "no text in field 'output'"),
                           ({"input": "y", "output": "z"}, "no text in field 'instruction'")):
        with pytest.raises(TaskRejected, match=detail):
            render_instruction(broken)


def test_a_template_over_any_fields_with_an_answer_field():
    piqa = {"goal": "Dry wet shoes.", "sol1": "Stuff them with newspaper.", "sol2": "Put them in the freezer.", "label": 0}
    text = render_fields(piqa, "{goal}\n1. {sol1}\n2. {sol2}", "label", {"0": "1", "1": "2"})
    assert text == "Dry wet shoes.\n1. Stuff them with newspaper.\n2. Put them in the freezer.\nAnswer: 1"
    copa = {"query": "The man turned on the faucet, therefore", "gold": 1, "choices": ["the toilet filled.", "water flowed."]}
    assert render_fields(copa, "{query} {choices[0]} or {choices[1]}?", None, {}) == (
        "The man turned on the faucet, therefore the toilet filled. or water flowed.?")
    with pytest.raises(TaskRejected, match="format names field 'sol2'"):
        render_fields({**piqa, "sol2": None}, "{goal}\n1. {sol1}\n2. {sol2}", "label", {})
    with pytest.raises(TaskRejected, match="answer '3' not in"):
        render_fields({**piqa, "label": 3}, "{goal}", "label", {"0": "1", "1": "2"})
    with pytest.raises(TaskRejected, match="no answer in field 'label'"):
        render_fields({k: v for k, v in piqa.items() if k != "label"}, "{goal}", "label", {})


def test_context_and_continuation_records():
    assert render_continuation({"ctx": "She opened the jar", "ending": "and the lid flew off."}, "ctx", "ending") == (
        "She opened the jar and the lid flew off.")
    with pytest.raises(TaskRejected, match="no text in field 'ending'"):
        render_continuation({"ctx": "She opened the jar"}, "ctx", "ending")

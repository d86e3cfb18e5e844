import json

import pytest

from hare_assets.lib.tasks import (
    TaskRejected,
    parse_restruct,
    render_classification,
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
        ("mcq", '{"question": "Q?", "options": ["a", "b", "c", "d"], "answer": "e"}', "answer_not_in_options"),
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

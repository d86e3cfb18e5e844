"""HARE D3: NLP-task text. Restruct outputs (JSON from the generator) are validated and rendered as
natural language; open task data (classification, multiple choice) is rendered by templates.

A rejected item raises `TaskRejected` with a reason the asset counts: malformed JSON, a missing
field, an answer that is not among the options, a gold label out of range.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hare_assets.lib.text_rules import detokenize

LETTERS = "ABCDEFGH"
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
_SPACED = re.compile(r" (?:'s|n't|'re|'ve|'ll|'d|'m|[.,;:!?])")


class TaskRejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


REQUIRED = {"qa": ("question", "answer"), "mcq": ("question", "options", "answer"), "cloze": ("text", "answer"), "summary": ("summary",)}


def extract_json(raw: str) -> dict[str, Any]:
    """The first JSON object in a model reply (code fences and chatter around it are tolerated)."""
    text = _FENCE.sub("", raw.strip())
    start = text.find("{")
    if start < 0:
        raise TaskRejected("malformed_json", f"no JSON object in reply: {raw[:120]!r}")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise TaskRejected("malformed_json", f"{exc.msg} at char {exc.pos}: {raw[:120]!r}") from None
    if not isinstance(obj, dict):
        raise TaskRejected("malformed_json", "reply is not a JSON object")
    return obj


def parse_restruct(kind: str, raw: str) -> dict[str, Any]:
    item = extract_json(raw)
    for name in REQUIRED[kind]:
        value = item.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise TaskRejected("missing_field", f"{kind} reply has no {name!r}")
    if kind == "mcq":
        options = item["options"]
        if not isinstance(options, list) or len(options) != 4 or not all(isinstance(o, str) and o.strip() for o in options):
            raise TaskRejected("bad_options", f"expected 4 non-empty string options, got {options!r:.120}")
        if len({o.strip().lower() for o in options}) != 4:
            raise TaskRejected("bad_options", "options repeat")
        answer = str(item["answer"]).strip()
        matches = [i for i, o in enumerate(options) if o.strip() == answer]
        if not matches and len(answer) <= 2 and answer.rstrip(".)").upper() in LETTERS[:4]:
            matches = [LETTERS.index(answer.rstrip(".)").upper())]  # "B" or "B." names an option
        if not matches:
            raise TaskRejected("answer_not_in_options", f"answer {answer!r:.60} is not one of the options")
        item["answer_index"] = matches[0]
    if kind == "cloze" and "____" not in str(item["text"]):
        raise TaskRejected("missing_field", "cloze text has no ____ blank")
    return item


def render_restruct(kind: str, item: dict[str, Any], passage: str) -> str:
    """Natural-language training text for a validated Restruct item."""
    if kind == "qa":
        return f"Read the passage and answer the question.\n\n{passage}\n\nQuestion: {item['question'].strip()}\nAnswer: {str(item['answer']).strip()}"
    if kind == "mcq":
        options = "\n".join(f"{LETTERS[i]}. {o.strip()}" for i, o in enumerate(item["options"]))
        i = item["answer_index"]
        return f"Question: {item['question'].strip()}\n{options}\nAnswer: {LETTERS[i]}. {item['options'][i].strip()}"
    if kind == "cloze":
        return f"Fill in the blank.\n{item['text'].strip()}\nAnswer: {str(item['answer']).strip()}"
    if kind == "summary":
        return f"Summarize the following text.\n\n{passage}\n\nSummary: {item['summary'].strip()}"
    raise ValueError(f"unknown Restruct task {kind!r}")


def _tidy(text: str) -> str:
    """Undo the tokenizer spacing some task sets ship with ("it 's a charming journey .")."""
    return detokenize(text, "wikitext").strip() if _SPACED.search(text) else text.strip()


def render_classification(text: str, label: Any, label_names: dict[str, str], instruction: str) -> str:
    key = str(label)
    if label_names and key not in label_names:
        raise TaskRejected("bad_label", f"label {key!r} not in {sorted(label_names)}")
    name = label_names.get(key, key)
    prompt = instruction or "What is the label of this text?"
    return f"{prompt}\n\n{_tidy(text)}\n\nAnswer: {name}"


def render_multiple_choice(query: str, choices: list[Any], gold: Any, instruction: str = "") -> str:
    """{query, choices, gold} records in three shapes: a query that already lists lettered
    choices and ends in "Answer:", a question, or a sentence to be continued."""
    if not isinstance(choices, list) or len(choices) < 2:
        raise TaskRejected("bad_choices", f"need at least two choices, got {choices!r:.80}")
    if not isinstance(gold, int) or not 0 <= gold < len(choices):
        raise TaskRejected("bad_gold", f"gold {gold!r} is not an index into {len(choices)} choices")
    query, answer = _tidy(query), str(choices[gold]).strip()
    head = f"{instruction}\n\n" if instruction else ""
    if query.rstrip().endswith("Answer:"):
        listed = re.search(rf"^{re.escape(answer)}\. (.+)$", query, re.MULTILINE) if len(answer) == 1 else None
        return f"{head}{query} {answer}" + (f". {listed.group(1).strip()}" if listed else "")
    if query.rstrip().endswith("?") or query.startswith(("Question:", "Passage:")):
        options = "\n".join(f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices[: len(LETTERS)]))
        return f"{head}{query}\n{options}\nAnswer: {LETTERS[gold]}. {answer}"
    return f"{head}{query} {answer}"

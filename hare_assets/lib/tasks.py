"""HARE D3: NLP-task text. Restruct outputs (JSON from the generator) are validated and rendered as
natural language; open task data (classification, multiple choice, any fields, context/continuation,
conversations and instruction records) is rendered by templates.

A rejected item raises `TaskRejected` with a reason the asset counts: malformed JSON, a missing
field, an answer that is not among the options, a gold label out of range, a record that does not
fit its declared layout (never rendered half).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hare_assets.lib.profile import RECORD_LAYOUTS, OpenTaskConfig
from hare_assets.lib.text_rules import detokenize

LETTERS = "ABCDEFGH"
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
_LABEL = re.compile(r"^\s*[A-Da-d][.):]\s+")  # "B. Paris" names the option "Paris"
_WORD = re.compile(r"[^\W\d_]+")
_SPACED = re.compile(r" (?:'s|n't|'re|'ve|'ll|'d|'m|[.,;:!?])")


class TaskRejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


REQUIRED = {"qa": ("question", "answer"), "mcq": ("question", "options", "answer"), "cloze": ("text", "answer"), "summary": ("summary",)}


def _text(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


def _matching(pattern: str) -> dict[str, Any]:
    """A string by a pattern that bounds its own length: xgrammar ignores min/maxLength beside a pattern."""
    return {"type": "string", "pattern": pattern}


_OPTION = r"^[^\n]{0,70}([A-Za-z]{2}|[0-9])[^\n]{0,70}$"  # a word or a number, not a placeholder ("...", "A")

# The JSON each Restruct prompt asks for, for backends that constrain decoding to it. Lengths are capped so that
# a small model cannot loop inside one string until max_tokens; the checks a schema cannot state (four distinct
# options, the answer among them) stay in `parse_restruct`.
_FIELDS: dict[str, dict[str, Any]] = {
    "qa": {"question": _text(300), "answer": _text(300)},
    "mcq": {"question": _text(300), "options": {"type": "array", "items": _matching(_OPTION), "minItems": 4, "maxItems": 4},
            "answer": {"enum": list(LETTERS[:4])}},  # a letter: 7 of 16 SmolLM2 replies valid, against 4 of 16 copying the text
    "cloze": {"text": _matching(r"^[^\n]{0,200}____[^\n]{0,200}$"), "answer": _text(100)},
    "summary": {"summary": _text(1200)},
}


def response_schema(kind: str) -> str:
    """The JSON Schema of a Restruct reply, as compact text (it is part of the generation cache key). Keys keep
    their order: constrained decoders write properties in schema order, and the question comes before its answer."""
    schema = {"type": "object", "properties": _FIELDS[kind], "required": list(REQUIRED[kind]), "additionalProperties": False}
    return json.dumps(schema, separators=(",", ":"))


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


def parse_restruct(kind: str, raw: str, passage: str | None = None) -> dict[str, Any]:
    """A validated Restruct item from a model reply; with its `passage`, the item must also be about it (share a
    content word with it), which catches a small model copying the prompt's format example."""
    item = extract_json(raw)
    for name in REQUIRED[kind]:
        value = item.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise TaskRejected("missing_field", f"{kind} reply has no {name!r}")
    if kind == "mcq":
        options = item["options"]
        if not isinstance(options, list) or len(options) != 4 or not all(isinstance(o, str) and o.strip() for o in options):
            raise TaskRejected("bad_options", f"expected 4 non-empty string options, got {options!r:.120}")
        if len({_LABEL.sub("", o).strip().lower() for o in options}) != 4:
            raise TaskRejected("bad_options", "options repeat")
        if any(not re.search(r"[^\W_]", o) or re.fullmatch(r"\W*[A-Da-d]\W*", o) for o in options):
            raise TaskRejected("bad_options", f"placeholder options {options!r:.120}")
        answer = str(item["answer"]).strip()
        matches = [i for i, o in enumerate(options) if o.strip() == answer]
        if not matches and len(answer) <= 2 and answer.rstrip(".)").upper() in LETTERS[:4]:
            matches = [LETTERS.index(answer.rstrip(".)").upper())]  # "B" or "B." names an option
        if not matches:
            raise TaskRejected("answer_not_in_options", f"answer {answer!r:.60} is not one of the options")
        item["answer_index"] = matches[0]
    if kind == "cloze" and "____" not in str(item["text"]):
        raise TaskRejected("missing_field", "cloze text has no ____ blank")
    if passage is not None and kind != "summary":
        about = " ".join(str(item[k]) for k in REQUIRED[kind] if k != "options")
        if kind == "mcq":
            about += " " + item["options"][item["answer_index"]]
        if not _content_words(about) & _content_words(passage):
            raise TaskRejected("ungrounded", "the item shares no content word with its passage")
    return item


_COMMON = frozenset({"about", "after", "again", "being", "could", "every", "other", "their", "there", "these", "those",
                     "under", "where", "which", "while", "would", "answer", "correct", "question", "document", "option"})


def _content_words(text: str) -> set[str]:
    """Words of five letters or more, less common function words and the prompt's own vocabulary."""
    return {w for w in (m.lower() for m in _WORD.findall(text)) if len(w) >= 5 and w not in _COMMON}


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
    name = _answer_words(label, label_names)
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


# --- open task data in the layouts SFT sets ship in -----------------------------------------------------------------

LAYOUT_MISMATCH = "layout_mismatch"
_SPEAKERS = {"system": "System", "human": "User", "user": "User", "gpt": "Assistant", "assistant": "Assistant"}


def _field(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise TaskRejected(LAYOUT_MISMATCH, f"no text in field {name!r}; fields: {sorted(record)[:10]}")
    return value.strip()


def _answer_words(value: Any, label_names: dict[str, str]) -> str:
    key = str(value).strip()
    if label_names and key not in label_names:
        raise TaskRejected("bad_label", f"answer {key!r} not in {sorted(label_names)}")
    return label_names.get(key, key)


def render_fields(record: dict[str, Any], fmt: str, answer_field: str | None, label_names: dict[str, str],
                  instruction: str = "") -> str:
    """`fmt` filled from the record's fields (every field it names must hold a value), then the answer."""
    values = {k: v for k, v in record.items() if v is not None and (not isinstance(v, str) or v.strip())}
    try:
        body = fmt.format_map(values)
    except KeyError as exc:
        raise TaskRejected(LAYOUT_MISMATCH, f"format names field {exc.args[0]!r}, which the record lacks or leaves empty") from None
    except (IndexError, ValueError) as exc:
        raise TaskRejected(LAYOUT_MISMATCH, f"format does not apply to this record: {exc}") from None
    head = f"{instruction}\n\n" if instruction else ""
    if answer_field is None:
        return head + body.strip()
    if answer_field not in values:
        raise TaskRejected(LAYOUT_MISMATCH, f"no answer in field {answer_field!r}")
    return f"{head}{body.strip()}\nAnswer: {_answer_words(values[answer_field], label_names)}"


def render_continuation(record: dict[str, Any], context_field: str, continuation_field: str) -> str:
    return f"{_field(record, context_field)} {_field(record, continuation_field)}"


def render_conversation(record: dict[str, Any]) -> str:
    """A ShareGPT / OpenHermes `conversations` list ({from, value}) or a `messages` list ({role, content}), one
    speaker per paragraph. Every turn must have a known speaker and text, and a user turn must get an answer."""
    if isinstance(record.get("conversations"), list):
        turns, who, said = record["conversations"], "from", "value"
    elif isinstance(record.get("messages"), list):
        turns, who, said = record["messages"], "role", "content"
    else:
        raise TaskRejected(LAYOUT_MISMATCH, f"no 'conversations' or 'messages' list; fields: {sorted(record)[:10]}")
    lines = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise TaskRejected(LAYOUT_MISMATCH, f"turn {i} is {type(turn).__name__}, not an object")
        speaker = _SPEAKERS.get(str(turn.get(who, "")).lower())
        text = turn.get(said)
        if speaker is None:
            raise TaskRejected(LAYOUT_MISMATCH, f"turn {i} has {who}={turn.get(who)!r}; expected one of {sorted(_SPEAKERS)}")
        if not isinstance(text, str) or not text.strip():
            raise TaskRejected(LAYOUT_MISMATCH, f"turn {i} has no text in {said!r}")
        lines.append(f"{speaker}: {text.strip()}")
    speakers = [line.split(":", 1)[0] for line in lines]
    if "User" not in speakers or "Assistant" not in speakers[speakers.index("User"):]:
        raise TaskRejected(LAYOUT_MISMATCH, "no user turn followed by an assistant turn")
    return "\n\n".join(lines)


def render_instruction(record: dict[str, Any]) -> str:
    """Alpaca (instruction, input, output) or Dolly (instruction, context, response); the input may be empty."""
    instruction = _field(record, "instruction")
    answer = next((k for k in ("output", "response") if k in record), None)
    if answer is None:
        raise TaskRejected(LAYOUT_MISMATCH, f"no 'output' or 'response' field; fields: {sorted(record)[:10]}")
    given = next((record[k] for k in ("input", "context") if isinstance(record.get(k), str) and record[k].strip()), "")
    middle = f"\n\n{given.strip()}" if given else ""
    return f"{instruction}{middle}\n\nAnswer: {_field(record, answer)}"


def render_open_task(doc: dict[str, Any], task: OpenTaskConfig) -> str:
    """One reader document of an open task set as training text, by the task's template."""
    if task.template in RECORD_LAYOUTS:
        record = json.loads(doc["text"])
        if not isinstance(record, dict):
            raise TaskRejected(LAYOUT_MISMATCH, f"record is {type(record).__name__}, not an object")
        if task.template == "fields":
            assert task.format is not None
            return render_fields(record, task.format, task.answer_field, task.label_names, task.instruction)
        if task.template == "continuation":
            return render_continuation(record, task.context_field, task.continuation_field)
        return render_conversation(record) if task.template == "conversation" else render_instruction(record)
    meta = json.loads(doc["meta"])
    if task.template == "classification":
        return render_classification(doc["text"], meta.get(task.label_field), task.label_names, task.instruction)
    return render_multiple_choice(doc["text"], meta.get("choices"), meta.get("gold"), task.instruction)

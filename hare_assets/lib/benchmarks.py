"""The benchmark registry (`resources/benchmarks.yaml`) and its items, normalised.

HARE decontaminates against *every split* of every benchmark, so each benchmark loads
from the canonical HF dataset or, offline, from a local folder laid out like
`../shared/data/benchmarks` (`HARE_BENCHMARKS_DIR`). Both paths end in the same
`BenchmarkItem`, whose `views` are the texts the n-gram index sees: a leaked item rarely
appears as one fixed concatenation (HellaSwag's context + gold ending, a Winogrande
sentence with its answer filled in, a GSM8K solution without its `<<calc>>` notes), and
recall drops without them. Item ids are stable across runs: the source's id where it
has one, else `<benchmark>/<split>/<file stem>/<row>`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hare_assets.lib.dedup import normalise_for_matching
from hare_assets.lib.paths import PROJECT_ROOT
from hare_assets.lib.profile import SourceConfig, _expand
from hare_assets.lib.readers import normalise_text, read_shard

REGISTRY_PATH = PROJECT_ROOT / "resources" / "benchmarks.yaml"
BENCHMARKS_DIR_ENV = "HARE_BENCHMARKS_DIR"
VIEW_KINDS = (
    "question_each_choice", "question_all_choices", "question_lettered_choices", "context_each_ending", "context_all_endings",
    "filled_sentence", "question_answer", "question_answer_plain",
)
_MAX_RECORD_BYTES = 64_000_000
_CALC = re.compile(r"<<[^<>]*>>")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LAYOUT_KEYS = {"winogrande_llmfoundry": "continuation"}  # a field every raw record of the layout has


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fields(_Strict):
    """Where an item's parts sit in a record: `a.b` is a nested key, `a[].b` maps over a list;
    `choices` may also be a list of paths (one column per choice, as in MMLU's CSVs)."""

    id: str | None = None
    question: str | None = None
    context: str | None = None
    choices: str | list[str] | None = None
    labels: str | None = None  # choice letters, for `answer: letter` with non-A-D labels
    answer: str | None = None
    split: str | None = None  # per-record split (demo_mc's single file)


class Origin(_Strict):
    """One way to obtain a benchmark: a HF dataset, files under a local folder, or package data."""

    id: str | None = None  # HF dataset id
    config: str | None = None
    splits: list[str] = Field(default_factory=list)
    format: Literal["jsonl", "csv", "json"] | None = None
    files: dict[str, str] = Field(default_factory=dict)  # split -> file or folder (relative to the local dir)
    glob: str | None = None
    generation_csv: str | None = None
    group_by: str | None = None
    layout: Literal["hellaswag_raw", "truthfulqa_mc_task", "winogrande_llmfoundry"] | None = None
    answer: Literal["index", "one_based", "letter", "flags", "text"] = "index"
    fields: Fields


class BenchmarkSpec(_Strict):
    name: str
    lm_eval_task: str
    num_fewshot: int
    views: list[Literal[VIEW_KINDS]]  # type: ignore[valid-type]
    hf: Origin | None = None
    local: Origin | None = None
    builtin: Origin | None = None

    @model_validator(mode="after")
    def _has_origin(self) -> BenchmarkSpec:
        if not (self.hf or self.local or self.builtin):
            raise ValueError(f"benchmark {self.name!r} needs hf, local or builtin")
        return self

    @property
    def splits(self) -> list[str]:
        """Every split HARE decontaminates against (the canonical release's)."""
        origin = self.hf or self.local or self.builtin
        assert origin is not None
        return list(origin.splits or origin.files)

    def missing_local_splits(self) -> list[str]:
        """Canonical splits the local layout does not hold (e.g. ARC train): not decontaminated offline."""
        if self.local is None or self.hf is None:
            return []
        return [s for s in self.hf.splits if s not in self.local.files]


@dataclass(frozen=True)
class BenchmarkItem:
    benchmark: str
    split: str
    item_id: str
    question: str
    choices: tuple[str, ...]
    answer: int | str | None  # index into choices, or the reference text of a generative task
    context: str
    views: tuple[str, ...]
    flags: tuple[int, ...] = ()  # 1/0 per choice where a source marks several true answers (TruthfulQA mc2)


def load_registry(path: str | os.PathLike[str] | None = None) -> dict[str, BenchmarkSpec]:
    """The registry by benchmark name; a bad entry fails naming the benchmark and field."""
    path = Path(path or REGISTRY_PATH)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = {}
    for name, body in (raw.get("benchmarks") or {}).items():
        try:
            specs[name] = BenchmarkSpec(name=name, **body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"{path}: benchmarks.{name}: {problems}") from None
    return specs


def benchmarks_dir() -> Path | None:
    """`HARE_BENCHMARKS_DIR` (a folder laid out like ../shared/data/benchmarks), or None: use the hub."""
    value = os.environ.get(BENCHMARKS_DIR_ENV)
    return Path(value).expanduser().resolve() if value else None


def load_items(spec: BenchmarkSpec, local_dir: Path | None = None) -> list[BenchmarkItem]:
    """Every item of every available split. Package data wins; then `local_dir`; then the HF hub."""
    if spec.builtin is not None:
        return _load_files(spec, spec.builtin, None)
    if local_dir is not None:
        if spec.local is None:
            raise ValueError(f"benchmark {spec.name!r} has no local layout; load it from the hub (no local_dir)")
        return _load_files(spec, spec.local, Path(local_dir))
    if spec.hf is None:
        raise ValueError(f"benchmark {spec.name!r} has no HF dataset; give a local folder")
    return _load_hf(spec, spec.hf)


def load_all(
    specs: Mapping[str, BenchmarkSpec], local_dir: Path | None = None, names: Iterable[str] | None = None
) -> list[BenchmarkItem]:
    return [item for name in (names or specs) for item in load_items(specs[name], local_dir)]


# --- records -> items --------------------------------------------------------------------------


def items_from_records(
    spec: BenchmarkSpec, origin: Origin, split: str | None, stem: str, records: Iterable[Mapping[str, Any]]
) -> list[BenchmarkItem]:
    """Items from raw records of one file or HF split (public so canonical shapes are testable offline)."""
    items, rows_in_group = [], {}
    for row, rec in enumerate(records):
        rec = _apply_layout(origin.layout, rec)
        f = origin.fields
        item_split = str(_get(rec, f.split)) if f.split else split
        assert item_split is not None, f"{spec.name}: no split for record {row}"
        group = str(_get(rec, origin.group_by)) if origin.group_by else stem
        local_row = rows_in_group[group] = rows_in_group.get(group, -1) + 1
        source_id = _get(rec, f.id) if f.id else None
        item_id = str(source_id) if source_id not in (None, "") else f"{spec.name}/{item_split}/{group}/{local_row}"
        choices = tuple(_text(c) for c in _choices(rec, f.choices))
        question, context = _text(_get(rec, f.question)), _text(_get(rec, f.context))
        raw_answer = _get(rec, f.answer)
        answer = _answer(origin.answer, raw_answer, choices, _get(rec, f.labels) if f.labels else None)
        flags = tuple(_flags(raw_answer)) if origin.answer == "flags" and answer is not None else ()
        views = _views(spec.views, question, context, choices, answer) + tuple(rec.get("_extra_views", ()))
        items.append(BenchmarkItem(spec.name, item_split, item_id, question, choices, answer, context, _unique(views), flags))
    return items


def _get(rec: Mapping[str, Any], path: str | None) -> Any:
    """`a.b` walks dicts; `a[].b` maps the rest of the path over a list."""
    if not path:
        return None
    value: Any = rec
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.endswith("[]"):
            seq = value.get(part[:-2]) if isinstance(value, Mapping) else None
            rest = ".".join(parts[i + 1 :])
            return [(_get(x, rest) if rest else x) for x in (seq or [])]
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _choices(rec: Mapping[str, Any], spec: str | list[str] | None) -> list[Any]:
    if spec is None:
        return []
    if isinstance(spec, list):
        return [_get(rec, p) for p in spec]
    value = _get(rec, spec)
    if isinstance(value, Mapping):  # TruthfulQA mc_task.json: {answer text: 0|1}
        return list(value)
    return list(value or [])


def _answer(kind: str, value: Any, choices: Sequence[str], labels: Sequence[Any] | None) -> int | str | None:
    if value is None or value == "":
        return None  # unlabelled test splits (HellaSwag, Winogrande)
    if kind == "text":
        return _text(value)
    if kind == "index":
        return int(value)
    if kind == "one_based":
        return int(value) - 1
    if kind == "letter":
        names = [str(x) for x in labels] if labels else list(_LETTERS[: len(choices)])
        value = str(value).strip()
        if value in names:
            return names.index(value)
        return int(value) - 1 if value.isdigit() else _LETTERS.index(value)  # NYSED items label 1-4
    if kind == "flags":
        return next((i for i, v in enumerate(_flags(value)) if v == 1), None)
    raise ValueError(f"unknown answer kind {kind!r}")


def _flags(value: Any) -> list[int]:
    """1/0 per choice: TruthfulQA's `{answer text: 0|1}` (mc_task.json) or a list of labels (the hub's)."""
    return [int(v) for v in (value.values() if isinstance(value, Mapping) else value)]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _unique(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for t in texts if t.strip()))


def _views(kinds: Sequence[str], question: str, context: str, choices: Sequence[str], answer: Any) -> tuple[str, ...]:
    out: list[str] = []
    for kind in kinds:
        if kind == "question_each_choice":
            out += [f"{question} {c}" for c in choices]
        elif kind == "question_all_choices":
            out.append(" ".join([question, *choices]))
        elif kind == "question_lettered_choices":  # the MMLU/ARC prompt shape: "Q\nA. c1\nB. c2 ... Answer: B"
            lettered = " ".join(f"{_LETTERS[i]}. {c}" for i, c in enumerate(choices[: len(_LETTERS)]))
            tail = f" Answer: {_LETTERS[answer]}" if isinstance(answer, int) and answer < len(_LETTERS) else ""
            out.append(f"{question} {lettered}{tail}")
        elif kind == "context_each_ending":
            out += [f"{context} {c}" for c in choices]
        elif kind == "context_all_endings":
            out.append(" ".join([context, *choices]))
        elif kind == "filled_sentence":
            out += [_fill(question, c) for c in choices]
        elif kind == "question_answer" and isinstance(answer, str):
            out.append(f"{question} {answer}")
        elif kind == "question_answer_plain" and isinstance(answer, str):
            plain = _CALC.sub("", answer).replace("####", "")
            out.append(f"{question} {plain}")
    return tuple(out)


def _fill(sentence: str, option: str) -> str:
    return sentence.replace("_", option, 1) if "_" in sentence else f"{sentence} {option}"


# --- layouts that need more than field paths ---------------------------------------------------------


def _apply_layout(layout: str | None, rec: Mapping[str, Any]) -> Mapping[str, Any]:
    if layout == "hellaswag_raw":
        rec = dict(rec)
        rec["ctx"] = _hellaswag_clean(str(rec.get("ctx") or f"{rec.get('ctx_a', '')} {rec.get('ctx_b', '')}"))
        rec["endings"] = [_hellaswag_clean(e) for e in rec.get("endings") or []]
        return rec
    if layout == "winogrande_llmfoundry":
        return _winogrande_blank(rec)
    return rec


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag preprocessing: WikiHow markers out (the text models are scored on)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _winogrande_blank(rec: Mapping[str, Any]) -> dict[str, Any]:
    """llm-foundry's {context_options: [prefix+option1, prefix+option2], continuation, gold} back to the
    canonical {sentence with "_", option1, option2}, splitting at the last word boundary both options share."""
    first, second = (str(x) for x in rec["context_options"])
    common = 0
    for a, b in zip(first, second):
        if a != b:
            break
        common += 1
    cut = first.rfind(" ", 0, common) + 1 if common < min(len(first), len(second)) else common
    continuation = str(rec.get("continuation") or "").strip()
    return {**rec, "sentence": f"{first[:cut]}_ {continuation}".strip(), "option1": first[cut:], "option2": second[cut:]}


# --- local files and the hub ---------------------------------------------------------------------


def _records(path: Path, fmt: str, key: str) -> list[dict[str, Any]]:
    """Whole records through the project's readers (BOM, CRLF, bad rows); a bad row fails the load."""
    if fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON array of records")
        return data
    if fmt == "csv":
        # readers' CSV path splits lines with str.splitlines, which also breaks on U+0085 inside quoted
        # fields (MMLU management_test.csv row 39); csv on a newline="" stream keeps such fields whole.
        text, _ = normalise_text(path.read_bytes().decode("utf-8"))
        return [dict(r) for r in csv.DictReader(io.StringIO(text, newline=""))]
    src = SourceConfig(name="benchmark", format=fmt, path=str(path), text_field=key)
    result = read_shard(src, path.name, _MAX_RECORD_BYTES)
    if result.quarantine:
        bad = result.quarantine[0]
        raise ValueError(f"{path}: row {bad['row']}: {bad['reason']}: {bad['detail']} (a benchmark must load completely)")
    return [{**json.loads(d["meta"]), key: d["text"]} for d in result.docs]


def _key_field(origin: Origin) -> str:
    """The field handed to the reader as its text column: one every record must have."""
    f = origin.fields
    for path in (f.question, f.context, f.choices if isinstance(f.choices, str) else None, f.answer):
        if path and "." not in path and "[" not in path:
            return path
    raise ValueError("no top-level field to read records by")


def _files(origin: Origin, root: Path) -> Iterator[tuple[str | None, Path]]:
    for split, rel in origin.files.items():
        path = Path(_expand(rel, f"benchmark file {rel}"))
        path = path if path.is_absolute() else root / path
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist (split {split!r})")
        if path.is_dir():
            for file in sorted(path.glob(origin.glob or "*")):
                yield split, file
        else:
            yield (None if split == "all" else split), path


def _load_files(spec: BenchmarkSpec, origin: Origin, root: Path | None) -> list[BenchmarkItem]:
    assert origin.format is not None, f"{spec.name}: local files need a format"
    items = []
    key = _LAYOUT_KEYS.get(origin.layout or "") or _key_field(origin)
    for split, file in _files(origin, root or PROJECT_ROOT):
        records = _records(file, origin.format, key)
        if origin.layout == "truthfulqa_mc_task" and origin.generation_csv:
            records = _with_generation_answers(records, (root or PROJECT_ROOT) / origin.generation_csv, origin)
        stem = file.stem.removesuffix(f"_{split}") if split else file.stem
        items += items_from_records(spec, origin, split, stem, records)
    return items


def _with_generation_answers(records: list[dict[str, Any]], csv_path: Path, origin: Origin) -> list[dict[str, Any]]:
    """TruthfulQA.csv (UTF-8 with BOM) holds the generation task's reference answers: index those
    that are not already mc2 choices, as question + answer views."""
    rows = _records(csv_path, "csv", "Question")
    by_question = {r["Question"].strip(): r for r in rows}
    if "Type" not in rows[0]:
        raise ValueError(f"{csv_path}: header not parsed (byte-order mark?): {sorted(rows[0])}")
    out = []
    for rec in records:
        row = by_question.get(str(rec.get("question", "")).strip())
        extra: list[str] = []
        if row is not None:
            known = {normalise_for_matching(c) for c in _choices(rec, origin.fields.choices)}
            answers = [row.get("Best Answer", ""), *row.get("Correct Answers", "").split(";"), *row.get("Incorrect Answers", "").split(";")]
            fresh = dict.fromkeys(a.strip() for a in answers if normalise_for_matching(a) not in known and a.strip())
            extra = [f"{rec['question'].strip()} {a}" for a in fresh]
        out.append({**rec, "_extra_views": extra, "_generation_row": row is not None})
    return out


def _load_hf(spec: BenchmarkSpec, origin: Origin) -> list[BenchmarkItem]:
    """Every split of the canonical dataset (needs a hub or a populated HF cache)."""
    import datasets

    items = []
    for split in origin.splits:
        try:
            data = datasets.load_dataset(origin.id, origin.config, split=split)
        except Exception as exc:  # offline, gated, renamed: say what to do
            raise RuntimeError(
                f"benchmark {spec.name!r}: could not load {origin.id} ({origin.config}, {split}): {exc}. "
                f"Offline? Set {BENCHMARKS_DIR_ENV} to a local folder laid out like ../shared/data/benchmarks."
            ) from exc
        items += items_from_records(spec, origin, split, origin.config or origin.id or spec.name, data)
    return items


# --- items as a table (benchmark_sets) -------------------------------------------------------------

ITEM_SCHEMA = {
    "benchmark": pl.String, "split": pl.String, "item_id": pl.String, "question": pl.String, "context": pl.String,
    "choices": pl.List(pl.String), "answer_index": pl.Int64, "answer_text": pl.String, "answer_flags": pl.List(pl.Int8),
    "views": pl.List(pl.String),
}


def items_frame(items: Sequence[BenchmarkItem]) -> pl.DataFrame:
    """Items as a polars frame (`benchmark_sets`): the answer is an index into `choices` or a reference text."""
    return pl.DataFrame(
        [
            {
                "benchmark": it.benchmark, "split": it.split, "item_id": it.item_id, "question": it.question,
                "context": it.context, "choices": list(it.choices),
                "answer_index": it.answer if isinstance(it.answer, int) else None,
                "answer_text": it.answer if isinstance(it.answer, str) else None,
                "answer_flags": list(it.flags),
                "views": list(it.views),
            }
            for it in items
        ],
        schema=ITEM_SCHEMA,
    )


def items_from_frame(frame: pl.DataFrame) -> list[BenchmarkItem]:
    return [
        BenchmarkItem(
            r["benchmark"], r["split"], r["item_id"], r["question"], tuple(r["choices"]),
            r["answer_index"] if r["answer_index"] is not None else r["answer_text"], r["context"], tuple(r["views"]),
            tuple(r.get("answer_flags") or ()),  # absent from tables written before flags were kept
        )
        for r in frame.iter_rows(named=True)
    ]


def gold_text(item: BenchmarkItem) -> str:
    """The item as one text with its answer: what a model that memorised the benchmark would have
    seen (the BenBench leakage check scores it against a paraphrase)."""
    if isinstance(item.answer, str):
        return f"{item.question} {item.answer}".strip()
    gold = item.choices[item.answer] if isinstance(item.answer, int) and 0 <= item.answer < len(item.choices) else ""
    if item.context:
        return f"{item.context} {gold}".strip()
    if "_" in item.question and gold:
        return _fill(item.question, gold)
    return f"{item.question} {gold}".strip()

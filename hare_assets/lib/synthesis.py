"""HARE D2 and D3 row building, outside Dagster: seeds → generation requests → checked rows.

Every output row keeps its lineage: `topic`, `seed_doc_ids` (the D1 or D2 documents it was made
from), `generator` (backend model id) and `prompt_version` (template id). Generation failures
become quarantine rows; outputs that fail the checks become removed rows with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import xxhash

from hare_assets.lib import schemas
from hare_assets.lib.generation import GenerationRequest, GenerationResult
from hare_assets.lib.profile import Profile
from hare_assets.lib.prompts import load_template
from hare_assets.lib.readers import doc_id
from hare_assets.lib.tasks import TaskRejected, parse_restruct, render_restruct, response_schema
from hare_assets.lib.text_rules import TERMINAL, clean_document, cut_to_last_sentence
from hare_assets.lib.tokenizer import token_counts

GENERATION_FAILED = "generation_failed"
TOO_LONG = "too_long"
CUT_AT_MAX_TOKENS = "cut_at_max_tokens"  # edit: a reply that hit its token cap loses its unfinished last sentence


def stable_sample(frame: pl.DataFrame, n: int, salt: str) -> pl.DataFrame:
    """Up to n rows chosen by a salted hash of doc_id: the same rows every run, independent of row order."""
    keyed = frame.with_columns(
        pl.col("doc_id").map_elements(lambda d: xxhash.xxh3_64_intdigest(f"{salt}:{d}".encode()), return_dtype=pl.UInt64).alias("_k")
    )
    return keyed.sort("_k").head(n).drop("_k")


def snippet(text: str, words: int) -> str:
    """The first `words` words, cut back to the last full sentence when one ends in the second half."""
    tokens = text.split()
    if len(tokens) <= words:
        return text.strip()
    cut = " ".join(tokens[:words])
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > len(cut) // 2 else cut


def _pick(options: list[str], key: str) -> str:
    return options[xxhash.xxh3_64_intdigest(key.encode()) % len(options)]


@dataclass
class Built:
    """Rows of one synthesized partition, split the way every stage accounts for them."""

    kept: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        return (
            schemas.frame(self.kept, schemas.SYNTHETIC),
            schemas.frame(self.removed, schemas.SYNTHETIC_REMOVED),
            schemas.frame(self.quarantine, schemas.QUARANTINE),
        )


def _row(text: str, source: str, shard: str, row: int, meta: dict, topic: str | None, seeds: list[str],
         generator: str, prompt: str, edits: list[str] | None = None) -> dict:
    return {
        "doc_id": doc_id(text), "source": source, "shard": shard, "row": row, "text": text,
        "meta": json.dumps(meta, sort_keys=True), "edits": edits or [], "topic": topic,
        "seed_doc_ids": seeds, "generator": generator, "prompt_version": prompt,
    }


def topic_requests(topic: str, keywords: list[str], docs: pl.DataFrame, profile: Profile) -> list[GenerationRequest]:
    """D2 for one topic: sample seeds, prompt in a style chosen per seed source. The requests of several
    topics go to the generator together (one batch), then `topic_rows` checks each topic's replies."""
    cfg, sampling = profile.synthesis, profile.generator.sampling
    seeds = stable_sample(docs, cfg.seeds_per_topic, f"{cfg.seed}:{topic}")
    requests = []
    for seed in seeds.iter_rows(named=True):
        style = _pick(cfg.styles_by_source.get(seed["source"], cfg.styles), seed["doc_id"])
        template = load_template("d2", style, cfg.prompt_version)
        extract = snippet(seed["text"], cfg.seed_words)
        requests.append(GenerationRequest(
            prompt=template.render(seed=extract, topic=", ".join(keywords[:6]) or topic),
            system=template.system, **sampling.request_fields(cfg.max_tokens), task=style, seed_text=seed["text"],
            meta={"seed_doc_id": seed["doc_id"], "style": style, "prompt": template.id},
        ))
    return requests


def topic_rows(topic: str, requests: list[GenerationRequest], results: list[GenerationResult], profile: Profile, model: str) -> Built:
    """D2 rows of one topic from its replies: the D1 quality rules and a token-length cap."""
    cfg = profile.synthesis
    built = Built()
    texts = [_finished(r, q) for r, q in zip(results, requests, strict=True)]
    lengths = token_counts([t or "" for t, _ in texts])
    quality = profile.clean.quality
    for i, (result, request, (text, cut), n_tokens) in enumerate(zip(results, requests, texts, lengths)):
        base = {"source": "synthetic", "shard": f"topic={topic}", "row": i}
        if not result.ok:
            built.quarantine.append({**base, "reason": GENERATION_FAILED, "detail": result.error or "", "raw": request.prompt[:500]})
            continue
        meta = {"style": request.meta["style"], "tokens": n_tokens, "cached": result.cached}
        checked = clean_document(text, profile.clean, quality)
        if cut:
            checked.edits.insert(0, CUT_AT_MAX_TOKENS)
        row = _row(checked.text if checked.reason is None else result.text, "synthetic", base["shard"], i, meta, topic,
                   [request.meta["seed_doc_id"]], model, request.meta["prompt"], checked.edits)
        if checked.reason is None and n_tokens > cfg.max_tokens:
            checked.reason, checked.detail = TOO_LONG, f"{n_tokens} tokens > synthesis.max_tokens={cfg.max_tokens}"
        if checked.reason is None:
            built.kept.append(row)
        else:
            built.removed.append({**row, "reason": checked.reason, "detail": checked.detail})
    return built


def _finished(result: GenerationResult, request: GenerationRequest) -> tuple[str | None, bool]:
    """A reply that stopped at its token cap mid-sentence loses the unfinished sentence (True: it was cut)."""
    text = result.text
    if text and result.completion_tokens >= request.max_tokens and not text.rstrip().endswith(TERMINAL):
        cut = cut_to_last_sentence(text)
        if cut:
            return cut, True
    return text, False


def restruct_requests(kind: str, seeds: pl.DataFrame, profile: Profile) -> list[GenerationRequest]:
    """D3 Restruct: one task item per synthetic seed, asked for as the task's JSON (`restruct_rows` checks the replies)."""
    cfg, sampling = profile.tasks, profile.generator.sampling
    picked = stable_sample(seeds, cfg.seeds_per_task, f"{cfg.seed}:{kind}")
    template = load_template("d3", kind, cfg.prompt_version)
    schema = response_schema(kind) if cfg.structured_output else None
    requests = []
    for seed in picked.iter_rows(named=True):
        passage = snippet(seed["text"], 180)
        requests.append(GenerationRequest(
            prompt=template.render(seed=passage), system=template.system, task=kind,
            **sampling.request_fields(cfg.max_tokens, temperature=cfg.temperature, repetition_penalty=cfg.repetition_penalty),
            seed_text=passage, response_schema=schema,
            meta={"seed_doc_id": seed["doc_id"], "topic": seed["topic"], "prompt": template.id},
        ))
    return requests


def restruct_rows(kind: str, requests: list[GenerationRequest], results: list[GenerationResult], profile: Profile, model: str) -> Built:
    """D3 rows of one task from its replies: validated, rendered, length-checked."""
    max_tokens = profile.tasks.max_tokens
    built = Built()
    rendered: list[tuple[int, str | None, str, str]] = []
    for i, (result, request) in enumerate(zip(results, requests, strict=True)):
        passage = request.seed_text
        base = {"source": f"task:{kind}", "shard": f"task={kind}", "row": i}
        if not result.ok:
            built.quarantine.append({**base, "reason": GENERATION_FAILED, "detail": result.error or "", "raw": request.prompt[:500]})
            continue
        try:
            text, reason, detail = render_restruct(kind, parse_restruct(kind, result.text, passage), passage), None, ""
        except TaskRejected as exc:
            text, reason, detail = result.text, exc.reason, exc.detail
        rendered.append((i, reason, detail, text))
    lengths = token_counts([text for *_, text in rendered])
    for (i, reason, detail, text), n_tokens in zip(rendered, lengths):
        request = requests[i]
        row = _row(text, f"task:{kind}", f"task={kind}", i, {"tokens": n_tokens}, request.meta["topic"],
                   [request.meta["seed_doc_id"]], model, request.meta["prompt"])
        if reason is None and n_tokens > max_tokens:
            reason, detail = TOO_LONG, f"{n_tokens} tokens > tasks.max_tokens={max_tokens}"
        (built.kept.append(row) if reason is None else built.removed.append({**row, "reason": reason, "detail": detail}))
    return built


def open_task_rows(
    name: str, records: list[dict], render: Callable[[dict], str], max_tokens: int, shard_of: Callable[[dict], str]
) -> Built:
    """Open task data: each reader document rendered by its template, then length-checked."""
    built = Built()
    rendered = []
    for rec in records:
        try:
            rendered.append((rec, render(rec), None, ""))
        except TaskRejected as exc:
            rendered.append((rec, rec["text"], exc.reason, exc.detail))
    lengths = token_counts([text for _, text, _, _ in rendered])
    for (rec, text, reason, detail), n_tokens in zip(rendered, lengths):
        row = _row(text, f"task:{name}", shard_of(rec), rec["row"], {"tokens": n_tokens, **json.loads(rec["meta"])}, None,
                   [rec["doc_id"]], "template", f"d3/{name}")
        if reason is None and n_tokens > max_tokens:
            reason, detail = TOO_LONG, f"{n_tokens} tokens > tasks.max_tokens={max_tokens}"
        (built.kept.append(row) if reason is None else built.removed.append({**row, "reason": reason, "detail": detail}))
    return built

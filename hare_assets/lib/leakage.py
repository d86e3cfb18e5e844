"""Benchmark-leakage check in the BenBench manner (HARE App. B, Table 6).

Each benchmark item is rendered as one text (question + answer, or context + gold ending) and
paraphrased elsewhere. A model that saw the original in training predicts its next tokens far
better than those of the paraphrase, which says the same thing in other words; so per benchmark
and split we report D (n-gram accuracy on originals, %), D′ (on paraphrases, %), Δ = D − D′ and
the perplexity of both. A large positive Δ points at leakage; Δ ≈ 0 is the clean case.

n-gram accuracy of one text: choose `starts` positions p spread evenly over its tokens (after
`min_prefix` tokens of context, leaving room for n targets), give the model the tokens before p,
decode n tokens greedily, and count a hit when all n equal the real tokens p..p+n-1. The
positions are the same *fractions* of the usable range for every text (`start_fractions`), so
the original and its paraphrase go through an identical procedure with the same number of
starting points; a text too short for distinct positions repeats some, keeping the denominator.

Greedy decoding is computed from one teacher-forced forward pass: the n greedy tokens equal the
real ones exactly when, at each step, the argmax given the *real* prefix is the real next token
(while they agree, the decoder's own output is the real text). So one pass per text scores every
start and gives the perplexity, instead of `starts × n` decoding steps. It also bypasses
`generate()`, whose checkpoint `generation_config` (a repetition penalty, say) would change what
"greedy" means. The test checks the equivalence against `generate()`.

Every text is scored after a prefix token (BOS, else EOS, as lm-eval does), so its first token
is predicted too; no tokenizer-added special tokens are used. Texts are batched by length
(right-padded, padding masked), so results do not depend on input order and barely on batch
size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import polars as pl


@dataclass(frozen=True)
class LeakageItem:
    benchmark: str
    split: str
    item_id: str
    text: str
    paraphrase: str


@dataclass(frozen=True)
class TextScore:
    """One text under one model: n-gram hits out of `starts`, and its token-level perplexity."""

    tokens: int  # tokens scored for perplexity (the text's tokens, after truncation)
    hits: int
    starts: int  # 0 when the text is too short to score: accuracy is then NaN
    nll: float  # summed negative log-likelihood over the scored tokens

    @property
    def accuracy(self) -> float:
        return self.hits / self.starts if self.starts else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else math.nan


def start_fractions(starts: int) -> list[float]:
    """Where the starting points sit in a text's usable range, first to last (0 and 1 included)."""
    if starts < 1:
        raise ValueError("starts must be at least 1")
    if starts == 1:
        return [0.0]
    return [k / (starts - 1) for k in range(starts)]


def start_positions(length: int, n: int = 5, starts: int = 5, min_prefix: int = 4) -> list[int]:
    """Token offsets p where a prediction of tokens p..p+n-1 starts, for a text of `length` tokens.

    The range runs from `min_prefix` (shrunk for short texts, never below 1) to `length - n`;
    positions are `start_fractions(starts)` of it, rounded half up. [] when `length <= n`.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    hi = length - n
    if hi < 1:
        return []
    lo = max(1, min(min_prefix, hi))
    return [lo + math.floor(f * (hi - lo) + 0.5) for f in start_fractions(starts)]


def _prefix_token(tokenizer: Any) -> int | None:
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return None


def _context_length(model: Any, max_length: int | None) -> int | None:
    return max_length or getattr(model.config, "max_position_embeddings", None)


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Dropout off while scoring; the caller's train/eval state is restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def score_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    n: int = 5,
    starts: int = 5,
    min_prefix: int = 4,
    batch_size: int = 8,
    device: str | None = None,
    max_length: int | None = None,
) -> list[TextScore]:
    """n-gram hits and perplexity for each text, in input order (see the module docstring).

    `max_length` (default: the model's context) bounds prefix token + text; longer texts are cut.
    `device` is where inputs go (default: the model's). A batch holds float32 logits of
    batch_size × longest text × vocabulary, which bounds `batch_size` on long texts.
    """
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not texts:
        return []
    prefix = _prefix_token(tokenizer)
    head = [] if prefix is None else [prefix]
    limit = _context_length(model, max_length)
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    seqs = [head + list(ids) for ids in encoded]
    if limit is not None:
        seqs = [s[:limit] for s in seqs]
    pad = tokenizer.pad_token_id
    pad = int(pad) if pad is not None else (prefix if prefix is not None else 0)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), seqs[i]))
    out: list[TextScore | None] = [None] * len(seqs)
    with _eval_mode(model), torch.inference_mode():
        for b in range(0, len(order), batch_size):
            rows = order[b : b + batch_size]
            width = max(len(seqs[i]) for i in rows)
            if width < 2:  # nothing to predict in this batch (empty texts)
                for i in rows:
                    out[i] = TextScore(tokens=0, hits=0, starts=0, nll=0.0)
                continue
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
                mask[r, : len(seqs[i])] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = ids[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            correct = (logits.argmax(-1) == targets).cpu()
            nll = nll.cpu().double()
            for r, i in enumerate(rows):
                scored = max(len(seqs[i]) - 1, 0)  # tokens with a prediction: all text tokens after a prefix token
                text_len = len(seqs[i]) - len(head)
                # text token t sits at sequence index t + len(head), predicted by column t + len(head) - 1
                shift = len(head) - 1
                positions = start_positions(text_len, n, starts, min_prefix)
                hits = sum(bool(correct[r, p + shift : p + shift + n].all()) for p in positions)
                out[i] = TextScore(tokens=scored, hits=hits, starts=len(positions), nll=float(nll[r, :scored].sum()))
    return out  # type: ignore[return-value]


def ngram_accuracy(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    n: int = 5,
    starts: int = 5,
    min_prefix: int = 4,
    batch_size: int = 8,
    device: str | None = None,
    max_length: int | None = None,
) -> list[float]:
    """Per text, the fraction of its `starts` positions whose n greedy tokens are exactly right (NaN if too short)."""
    scores = score_texts(model, tokenizer, texts, n, starts, min_prefix, batch_size, device, max_length)
    return [s.accuracy for s in scores]


def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 8,
    device: str | None = None,
    max_length: int | None = None,
) -> list[float]:
    """Per text, exp(mean token negative log-likelihood), padding excluded."""
    scores = score_texts(model, tokenizer, texts, batch_size=batch_size, device=device, max_length=max_length)
    return [s.perplexity for s in scores]


ITEM_SCHEMA = {
    "benchmark": pl.String,
    "split": pl.String,
    "item_id": pl.String,
    "D": pl.Float64,
    "D_prime": pl.Float64,
    "delta": pl.Float64,
    "ppl_original": pl.Float64,
    "ppl_paraphrase": pl.Float64,
    "tokens_original": pl.Int64,
    "tokens_paraphrase": pl.Int64,
}


def leakage_items(
    items: Sequence[LeakageItem],
    model: Any,
    tokenizer: Any,
    n: int = 5,
    starts: int = 5,
    min_prefix: int = 4,
    batch_size: int = 8,
    device: str | None = None,
    max_length: int | None = None,
) -> pl.DataFrame:
    """One row per item: its n-gram accuracy (%) on the original (D) and the paraphrase (D_prime),
    delta = D − D_prime, both perplexities, and the tokens each perplexity is over."""
    def score(texts: list[str]) -> list[TextScore]:
        return score_texts(model, tokenizer, texts, n, starts, min_prefix, batch_size, device, max_length)

    original, para = score([it.text for it in items]), score([it.paraphrase for it in items])
    rows = []
    for it, o, p in zip(items, original, para):
        d, d_prime = 100 * o.accuracy, 100 * p.accuracy
        rows.append(
            {
                "benchmark": it.benchmark,
                "split": it.split,
                "item_id": str(it.item_id),
                "D": d,
                "D_prime": d_prime,
                "delta": d - d_prime,
                "ppl_original": o.perplexity,
                "ppl_paraphrase": p.perplexity,
                "tokens_original": o.tokens,
                "tokens_paraphrase": p.tokens,
            }
        )
    return pl.DataFrame(rows, schema=ITEM_SCHEMA)


TABLE_SCHEMA = {
    "benchmark": pl.String,
    "split": pl.String,
    "items": pl.Int64,
    "scored": pl.Int64,
    "D": pl.Float64,
    "D_prime": pl.Float64,
    "delta": pl.Float64,
    "ppl_original": pl.Float64,
    "ppl_paraphrase": pl.Float64,
}


def leakage_summary(per_item: pl.DataFrame) -> pl.DataFrame:
    """HARE Table 6 from `leakage_items` rows: per (benchmark, split), D and D_prime are means over
    the `scored` items (both versions long enough, so Δ compares like with like); perplexity is
    pooled over tokens, exp(Σ NLL / Σ tokens)."""
    both = pl.col("D").is_not_nan() & pl.col("D_prime").is_not_nan()

    def pooled(version: str) -> pl.Expr:
        ppl, tok = pl.col(f"ppl_{version}"), pl.col(f"tokens_{version}")
        has = tok > 0
        nll = (ppl.log() * tok).filter(has).sum()
        return (nll / tok.filter(has).sum()).exp().alias(f"ppl_{version}")

    table = (
        per_item.group_by("benchmark", "split")
        .agg(
            pl.len().cast(pl.Int64).alias("items"),
            both.sum().cast(pl.Int64).alias("scored"),
            pl.col("D").filter(both).mean().alias("D"),
            pl.col("D_prime").filter(both).mean().alias("D_prime"),
            pooled("original"),
            pooled("paraphrase"),
        )
        .with_columns((pl.col("D") - pl.col("D_prime")).alias("delta"))
        .sort("benchmark", "split")
    )
    return table.select(list(TABLE_SCHEMA)).cast(TABLE_SCHEMA)  # type: ignore[arg-type]


def leakage_table(
    items: Sequence[LeakageItem],
    model: Any,
    tokenizer: Any,
    n: int = 5,
    starts: int = 5,
    min_prefix: int = 4,
    batch_size: int = 8,
    device: str | None = None,
    max_length: int | None = None,
) -> pl.DataFrame:
    """One row per (benchmark, split): items, scored, D, D_prime, delta (all %), ppl_original, ppl_paraphrase."""
    return leakage_summary(leakage_items(items, model, tokenizer, n, starts, min_prefix, batch_size, device, max_length))


def load_model(path: str | Path, device: str | None = None, dtype: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) from an HF directory, in eval mode on `device` (default: CUDA if present)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
    model.to(device).eval()
    return model, tokenizer

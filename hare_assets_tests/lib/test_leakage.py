import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download: the tokenizer comes from mistral-common
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import math  # noqa: E402

import polars as pl  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hare_assets.lib.leakage import (  # noqa: E402
    LeakageItem,
    leakage_items,
    leakage_summary,
    leakage_table,
    load_model,
    ngram_accuracy,
    perplexity,
    score_texts,
    start_fractions,
    start_positions,
)
from hare_assets.lib.tokenizer import hf_tokenizer_dir  # noqa: E402

# "Benchmark" items written for this test, each with a hand-written paraphrase that keeps the
# meaning and changes the wording (as the project's generator would).
ITEMS = [
    LeakageItem(
        "toyqa", "test", "q1",
        "Question: Which gas do green plants take in from the air to make sugar? Answer: Plants absorb carbon dioxide and, using sunlight, turn it into glucose.",
        "Question: To produce sugar, what gas is drawn out of the atmosphere by leafy plants? Answer: Using the energy of light, they capture CO2 and convert it to glucose.",
    ),
    LeakageItem(
        "toyqa", "test", "q2",
        "Question: Why does a metal spoon feel colder than a wooden one at room temperature? Answer: Metal conducts heat away from your hand much faster than wood does.",
        "Question: At the same room temperature, how come a steel spoon seems chillier to touch than a timber spoon? Answer: Steel draws warmth from the skin far more quickly than timber.",
    ),
    LeakageItem(
        "toyqa", "train", "q3",
        "Question: How many legs does a spider have, and how does that differ from insects? Answer: A spider has eight legs, while every adult insect walks on six.",
        "Question: Spiders and insects differ in their number of limbs; what are the counts? Answer: Arachnids such as spiders possess 8 legs, whereas grown insects possess 6.",
    ),
    LeakageItem(
        "toycloze", "validation", "c1",
        "The baker pulled the bread out of the oven too early, so the middle of the loaf was still wet and doughy when she cut it open.",
        "Because she removed the loaf from the stove before it was done, its centre remained damp and sticky once the baker sliced into it.",
    ),
    LeakageItem(
        "toycloze", "validation", "c2",
        "After the storm knocked out the power lines, the whole village lit candles and gathered in the school hall until the electricity returned.",
        "When high winds brought the cables down, residents of the hamlet burned candles and met in the schoolhouse till power came back on.",
    ),
]

SEED = 1234


def _tiny_mistral(seed: int):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    config = MistralConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return MistralForCausalLM(config)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_tokenizer_dir(tmp_path_factory.mktemp("tok")))
    tok.pad_token = tok.unk_token  # a pad id for batching; always masked out
    return tok


@pytest.fixture(scope="module")
def untrained(tokenizer):
    return _tiny_mistral(SEED).eval()


@pytest.fixture(scope="module")
def memorised(tokenizer):
    """The tiny model trained on the original texts only, until it reproduces them: every token from
    the 5th on is the argmax (the first few are ambiguous, three items open with "Question:"), then
    a few steps more for margin. About 50 steps of AdamW."""
    model = _tiny_mistral(SEED)
    seqs = [[tokenizer.bos_token_id, *tokenizer(it.text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id] for it in ITEMS]
    width = max(map(len, seqs))
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    model.train()
    extra = None
    for _ in range(300):
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        # column c predicts sequence index c + 1 (BOS sits at 0): text tokens 4.. are columns 4..
        known = (out.logits[:, 4:-1].argmax(-1) == ids[:, 5:]) | (mask[:, 5:] == 0)
        if extra is None and bool(known.all()):
            extra = 10
        if extra is not None:
            if extra == 0:
                break
            extra -= 1
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    assert extra == 0, f"the tiny model did not memorise its texts (loss {out.loss.item():.3f})"
    return model


# --- position selection --------------------------------------------------------------------------


def test_start_fractions():
    assert start_fractions(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert start_fractions(1) == [0.0]
    with pytest.raises(ValueError):
        start_fractions(0)


def test_same_fractions_for_original_and_paraphrase():
    for original_len, paraphrase_len in [(40, 57), (33, 31), (120, 19)]:
        a, b = start_positions(original_len, 5, 5, 4), start_positions(paraphrase_len, 5, 5, 4)
        assert len(a) == len(b) == 5
        for length, positions in ((original_len, a), (paraphrase_len, b)):
            lo, hi = 4, length - 5
            assert positions[0] == lo and positions[-1] == hi  # first after the minimum prefix, last leaves n targets
            for p, f in zip(positions, start_fractions(5)):
                assert abs((p - lo) / (hi - lo) - f) <= 0.5 / (hi - lo) + 1e-9  # the same fraction, up to rounding
            assert positions == sorted(positions)
    assert start_positions(45, 5, 5, 4) == [4, 13, 22, 31, 40]


def test_short_texts_keep_the_number_of_starts():
    assert start_positions(8, 5, 5, 4) == [3, 3, 3, 3, 3]  # min prefix shrinks to fit; positions repeat
    assert start_positions(6, 5, 5, 4) == [1, 1, 1, 1, 1]  # one token of prefix, five targets
    assert start_positions(5, 5, 5, 4) == []  # no room for a prefix and n targets: not scorable
    assert start_positions(0, 5, 5, 4) == []
    assert start_positions(12, 5, 3, 4) == [4, 6, 7]  # rounded half up: 5.5 -> 6


# --- scoring on real models -------------------------------------------------------------------------


def test_memorisation_is_detected(memorised, tokenizer):
    table = leakage_table(ITEMS, memorised, tokenizer, n=5, starts=5)
    with pl.Config(tbl_cols=-1, tbl_width_chars=200):
        print("\n" + str(table))
    assert table["benchmark"].to_list() == ["toycloze", "toyqa", "toyqa"]
    assert table["split"].to_list() == ["validation", "test", "train"]
    assert table["items"].to_list() == table["scored"].to_list() == [2, 2, 1]
    total = leakage_summary(leakage_items(ITEMS, memorised, tokenizer).with_columns(benchmark=pl.lit("all"), split=pl.lit("all")))
    print(total)
    row = total.row(0, named=True)
    assert row["D"] >= 80
    assert row["D_prime"] <= 30
    assert row["delta"] >= 50
    assert row["ppl_original"] < 2 and row["ppl_paraphrase"] > 5 * row["ppl_original"]
    assert (table["delta"] > 30).all()
    assert (table["ppl_original"] < table["ppl_paraphrase"]).all()


def test_untrained_model_shows_no_gap(untrained, tokenizer):
    table = leakage_table(ITEMS, untrained, tokenizer)
    assert (table["delta"].abs() <= 10).all()
    # an untrained model finds both versions about equally improbable (near-uniform over 32,000 tokens)
    ratio = table["ppl_paraphrase"] / table["ppl_original"]
    assert ((ratio > 0.8) & (ratio < 1.25)).all()


def test_teacher_forced_scoring_equals_greedy_decoding(memorised, tokenizer):
    """A hit is exactly: generate() greedily from the prefix and get the real next n tokens."""
    texts = [t for it in ITEMS for t in (it.text, it.paraphrase)]
    scores = score_texts(memorised, tokenizer, texts, n=5, starts=5)
    prefix = [tokenizer.bos_token_id]
    prompts, targets, owner = [], [], []
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for p in start_positions(len(ids), 5, 5, 4):
            prompts.append(prefix + ids[:p])
            targets.append(ids[p : p + 5])
            owner.append(i)
    width = max(map(len, prompts))
    input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for r, ids in enumerate(prompts):  # left-padded: generation continues from the right edge
        input_ids[r, width - len(ids) :], attention[r, width - len(ids) :] = torch.tensor(ids), 1
    with torch.inference_mode():
        out = memorised.generate(
            input_ids=input_ids, attention_mask=attention, max_new_tokens=5, min_new_tokens=5,
            do_sample=False, pad_token_id=tokenizer.pad_token_id,
        )
    generated = out[:, width:].tolist()
    hits = [0] * len(texts)
    for i, gen, tgt in zip(owner, generated, targets):
        hits[i] += gen == tgt
    assert hits == [s.hits for s in scores]
    assert 0 < sum(hits) < 5 * len(texts)  # a mix of hits and misses, so the comparison means something


def test_results_do_not_depend_on_batch_size_or_order(memorised, tokenizer):
    texts = [t for it in ITEMS for t in (it.text, it.paraphrase)]
    base_acc = ngram_accuracy(memorised, tokenizer, texts, batch_size=3)
    base_ppl = perplexity(memorised, tokenizer, texts, batch_size=3)
    for batch_size in (1, 4, 64):
        assert ngram_accuracy(memorised, tokenizer, texts, batch_size=batch_size) == base_acc
        assert perplexity(memorised, tokenizer, texts, batch_size=batch_size) == pytest.approx(base_ppl, rel=1e-4)
    perm = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]
    assert ngram_accuracy(memorised, tokenizer, [texts[i] for i in perm], batch_size=3) == [base_acc[i] for i in perm]


def test_perplexity_is_the_models_own_loss(memorised, tokenizer):
    text = ITEMS[1].paraphrase
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
    with torch.inference_mode():
        expected = math.exp(memorised(input_ids=ids, labels=ids).loss.item())
    # padded next to a longer text, the padding must not count
    got = perplexity(memorised, tokenizer, [text, ITEMS[0].text + " " + ITEMS[3].text], batch_size=2)[0]
    assert got == pytest.approx(expected, rel=1e-4)


def test_short_and_empty_texts(memorised, tokenizer):
    scores = score_texts(memorised, tokenizer, ["", "Hi", ITEMS[0].text])
    assert math.isnan(scores[0].accuracy) and math.isnan(scores[0].perplexity) and scores[0].tokens == 0
    assert math.isnan(scores[1].accuracy) and scores[1].tokens == 1 and math.isfinite(scores[1].perplexity)
    assert scores[2].starts == 5
    items = [*ITEMS[:2], LeakageItem("toyqa", "test", "tiny", "Yes.", "Indeed.")]
    per_item = leakage_items(items, memorised, tokenizer)
    assert per_item.height == 3 and per_item.filter(pl.col("item_id") == "tiny")["D"].is_nan().all()
    row = leakage_summary(per_item).row(0, named=True)
    assert row["items"] == 3 and row["scored"] == 2
    assert row["D"] == pytest.approx(per_item["D"][:2].mean())
    assert not math.isnan(row["delta"]) and math.isfinite(row["ppl_original"])


def test_per_item_rows_roll_up_into_the_table(memorised, tokenizer):
    per_item = leakage_items(ITEMS, memorised, tokenizer)
    assert per_item.columns == [
        "benchmark", "split", "item_id", "D", "D_prime", "delta",
        "ppl_original", "ppl_paraphrase", "tokens_original", "tokens_paraphrase",
    ]
    assert per_item["item_id"].to_list() == [it.item_id for it in ITEMS]
    assert ((per_item["D"] % 20) == 0).all()  # 5 starts: every item scores a multiple of 20%
    table = leakage_summary(per_item)
    cloze = table.filter(pl.col("benchmark") == "toycloze").row(0, named=True)
    rows = per_item.filter(pl.col("benchmark") == "toycloze")
    assert cloze["D"] == pytest.approx(rows["D"].mean()) and cloze["delta"] == pytest.approx(rows["delta"].mean())
    nll = (rows["ppl_original"].log() * rows["tokens_original"]).sum() / rows["tokens_original"].sum()
    assert cloze["ppl_original"] == pytest.approx(math.exp(nll))  # pooled over tokens


def test_load_model_round_trip(memorised, tokenizer, tmp_path):
    memorised.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tok = load_model(tmp_path, device="cpu")
    assert not model.training and str(next(model.parameters()).device) == "cpu"
    texts = [ITEMS[0].text, ITEMS[0].paraphrase]
    assert ngram_accuracy(model, tok, texts) == ngram_accuracy(memorised, tokenizer, texts)
    assert perplexity(model, tok, texts) == pytest.approx(perplexity(memorised, tokenizer, texts), rel=1e-5)


def test_scoring_leaves_train_mode_alone(untrained, tokenizer):
    untrained.train()
    try:
        ngram_accuracy(untrained, tokenizer, [ITEMS[0].text])
        assert untrained.training
    finally:
        untrained.eval()

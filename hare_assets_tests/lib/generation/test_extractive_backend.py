import json

import pytest

from hare_assets.lib.generation import GenerationCache, GenerationRequest, Generator, PermanentError, build_backend
from hare_assets.lib.generation.extractive import MODEL_ID, split_sentences
from hare_assets.lib.prompts import load_template
from hare_assets.lib.tasks import parse_restruct

SEED = """The Erie Canal opened in 1825 and linked the Hudson River at Albany with Lake Erie at Buffalo. Before the canal, moving a ton of flour from Buffalo to New York City took about three weeks and cost nearly 100 dollars. After the canal opened, the same trip took eight days and cost around 10 dollars. Governor DeWitt Clinton championed the project, and critics mocked it as "Clinton's Ditch" while it was being dug.

The canal was 363 miles long and rose about 568 feet through 83 locks. Most of the digging was done by hand, with crews of local farmers and Irish immigrants working through swamps and limestone ridges. Engineers such as Benjamin Wright and James Geddes learned surveying on the job, because few trained engineers lived in the young United States. The locks at Lockport, a staircase of five double locks, became a tourist attraction soon after they were finished.

Trade on the canal transformed the economy of New York. Farm goods from the Great Lakes region flowed east, while manufactured goods and settlers moved west. Towns along the route, including Syracuse, Rochester and Utica, grew quickly into busy commercial cities. New York City became the leading port of the country, overtaking Boston and Philadelphia within a few decades.

The canal was enlarged several times to carry bigger boats. In 1918 much of it was replaced by the New York State Barge Canal, which used the rivers and lakes more directly. Today the waterway is used mostly by pleasure boats, and the old towpath has become a long trail for cyclists and walkers. If you visit Lockport, you can still see the original stone locks beside the modern ones."""

SHORT = "Photosynthesis is the process by which green plants turn light into chemical energy. Chlorophyll is a pigment that absorbs red and blue light. Plants take in carbon dioxide through small pores called stomata. Oxygen is released as a by-product of the reaction."


@pytest.fixture(scope="module")
def backend():
    return build_backend("extractive")


def _one(backend, task, seed_text=SEED, prompt="Write it.", **kw):
    return backend.generate_one(GenerationRequest(prompt=prompt, task=task, seed_text=seed_text, **kw)).text


@pytest.mark.parametrize("style", ["textbook", "story", "wiki", "blog", "d2/qa"])
def test_prose_styles_read_as_documents(backend, style):
    text = _one(backend, style)
    assert text == _one(backend, style)  # deterministic
    words = len(text.split())
    assert 150 <= words <= 600, words
    assert text.rstrip()[-1] in ".!?"
    title, intro, *_ = text.split("\n\n")
    assert "Canal" in title and intro.endswith(".")
    body = {s for s in split_sentences(SEED)}
    assert sum(s in text for s in body) >= 8  # extractive: the seed's own sentences, regrouped


def test_prose_respects_a_small_budget_and_a_short_seed(backend):
    assert len(_one(backend, "textbook", max_tokens=80).split()) < 150
    short = _one(backend, "wiki", seed_text=SHORT)
    assert short.endswith(".") and "Photosynthesis" in short


def test_restruct_outputs_are_the_documented_json(backend):
    for seed in range(6):
        mcq = json.loads(_one(backend, "mcq", seed=seed))
        assert set(mcq) == {"question", "options", "answer"}
        assert len(mcq["options"]) == 4 and len({o.lower() for o in mcq["options"]}) == 4
        assert mcq["answer"] in mcq["options"] and "____" in mcq["question"]
        blanked = mcq["question"].split('"')[1]
        assert blanked.replace("____", mcq["answer"]) in SEED  # the answer restores a seed sentence
        kinds = {o.isdigit() for o in mcq["options"]}
        assert len(kinds) == 1  # distractors of the same kind as the answer
    cloze = json.loads(_one(backend, "cloze"))
    assert set(cloze) == {"text", "answer"} and cloze["text"].replace("____", cloze["answer"]) in SEED
    qa = json.loads(_one(backend, "qa", prompt='Reply with JSON only: {"question": "...", "answer": "..."}'))
    assert set(qa) == {"question", "answer"} and qa["question"].endswith("?") and qa["answer"] in SEED
    definition = json.loads(_one(backend, "d3/qa.v1", seed_text=SHORT))
    assert definition["question"].startswith("What is") and definition["answer"] in SHORT
    summary = json.loads(_one(backend, "summary"))
    assert set(summary) == {"summary"} and SEED.startswith(summary["summary"][:60])
    assert 1 <= len(split_sentences(summary["summary"])) <= 3


def test_mcq_varies_with_the_seed_and_the_request_seed(backend):
    questions = {_one(backend, "mcq", seed=s) for s in range(8)}
    assert len(questions) >= 2
    assert json.loads(_one(backend, "mcq", seed_text=SHORT))["answer"] in SHORT


def test_paraphrase_is_light_and_deterministic(backend):
    source = "If it rains, we stay inside. The children began the whole test quickly because the problem was simple."
    out = _one(backend, "paraphrase", seed_text="", prompt=source)
    assert out == _one(backend, "paraphrase", seed_text="", prompt=source)
    assert out != source and out.endswith(".") and len(split_sentences(out)) == 2
    assert out.startswith("We stay inside if it rains.")  # clause reordering
    assert len(out.split()) == len(source.split())


def test_seed_comes_from_the_prompt_when_not_given(backend):
    prompt = f"Here is an extract:\n\n<extract>\n{SHORT}\n</extract>\n\nWrite a textbook unit."
    assert _one(backend, "textbook", seed_text="", prompt=prompt) == _one(backend, "textbook", seed_text=SHORT, prompt="other")


def test_bad_tasks_and_seeds_are_per_request_errors(backend, tmp_path):
    with pytest.raises(PermanentError, match="no task"):
        _one(backend, "poem")
    gen = Generator(backend, GenerationCache(tmp_path / "c.sqlite"))
    results = gen.generate([
        GenerationRequest(prompt="p", task="mcq", seed_text="Too short."),
        GenerationRequest(prompt="p", task="textbook", seed_text=SEED),
        GenerationRequest(prompt="p", task="textbook", seed_text=SHORT),
    ])
    assert "too short" in results[0].error and results[1].ok and results[2].ok
    assert results[1].text != results[2].text  # seed_text is in the extractive backend's cache key
    assert gen.stats.failures == 1 and gen.stats.retries == 0
    assert backend.model == MODEL_ID and backend.kind == "extractive"
    again = gen.generate([GenerationRequest(prompt="p", task="textbook", seed_text=SEED)])
    assert again[0].cached and again[0].text == results[1].text


@pytest.mark.parametrize("kind", ["qa", "mcq", "cloze", "summary"])
def test_restruct_replies_pass_the_project_validator(backend, kind):
    template = load_template("d3", kind, "v1")  # the real prompts: bare "qa" asks for JSON there
    for seed_text in (SEED, SHORT):
        request = GenerationRequest(prompt=template.render(seed=seed_text), system=template.system, task=kind, seed_text=seed_text)
        item = parse_restruct(kind, backend.generate_one(request).text)
        assert item


@pytest.mark.parametrize("style", ["textbook", "story", "wiki", "blog", "qa"])
def test_d2_templates_give_prose(backend, style):
    template = load_template("d2", style, "v1")
    request = GenerationRequest(prompt=template.render(seed=SEED, topic="canals"), system=template.system, task=style)
    text = backend.generate_one(request).text  # the seed is read from the prompt's <extract>
    assert not text.startswith("{") and text.endswith(".") and 150 <= len(text.split()) <= 600
    json_seed = SEED + " The records were later exported as JSON files."  # the seed, not the instructions
    assert not backend.generate_one(GenerationRequest(prompt=template.render(seed=json_seed, topic="c"), task=style)).text.startswith("{")

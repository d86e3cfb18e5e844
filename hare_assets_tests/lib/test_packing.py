import json

import numpy as np
import pytest

from hare_assets.lib.packing import PackedDataset, pack_documents, pack_token_ids
from hare_assets.lib.presets import BOS_ID, EOS_ID
from hare_assets.lib.tokenizer import _processor, mistral_model_path

SENTENCES = [
    "The keeper climbed the spiral stair at dusk and trimmed the wick before the fog rolled in.",
    "Ships that passed the headland counted the flashes: two short, one long, then darkness.",
    "In winter the gulls sheltered on the leeward side, where the stones kept a little warmth.",
    "Her logbook recorded wind, tide and visibility every four hours, in a small careful hand.",
    "When the supply boat was late, they rationed paraffin and read the almanac by candlelight.",
    "A storm in March tore the slates from the roof of the oil store and scattered them on the rocks.",
    "Children from the village sometimes rowed out on calm days to ask about the great lens.",
    "The lens, made of ninety-six prisms, floated on a bath of mercury so it could turn with a touch.",
]


def make_documents(n: int = 40) -> list[tuple[str, str]]:
    """Documents of varied length (one to eight sentences, some with newlines and non-ASCII)."""
    docs = []
    for i in range(n):
        k = 1 + (i * 5) % 8
        parts = [SENTENCES[(i + j) % len(SENTENCES)] for j in range(k)]
        text = " ".join(parts) if i % 3 else "\n\n".join(parts)
        if i % 7 == 0:
            text += " Café déjà vu — 12 °C."
        docs.append((f"doc-{i:03d}", text))
    return docs


def sp():
    return _processor(str(mistral_model_path()))


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    docs = make_documents()
    stats = pack_documents(docs, out, seq_len=32, shard_tokens=32 * 10, batch_size=7)
    return docs, stats, PackedDataset(out)


def test_blocks_are_full_and_tokens_accounted(packed):
    docs, stats, ds = packed
    total = sum(len(ids) + 2 for ids in sp().encode([t for _, t in docs]))
    assert stats.tokens + stats.dropped_tokens == total
    assert 0 <= stats.dropped_tokens < 32
    assert len(ds) == stats.blocks == total // 32 and stats.shards == -(-stats.blocks // 10) > 1
    blocks = np.stack([ds[i] for i in range(len(ds))])
    assert blocks.shape == (stats.blocks, 32) and blocks.dtype == np.uint16
    assert (blocks != 0).all()  # no padding (and no <unk>)
    assert stats.tokens_per_s > 0
    header = json.loads((ds.path / "header.json").read_text())
    assert header["stats"]["blocks"] == stats.blocks and header["seq_len"] == 32
    assert not [p for p in ds.path.iterdir() if ".tmp" in p.name]


def test_provenance_spans_tile_every_block(packed):
    _, stats, ds = packed
    prov = ds.provenance().collect()
    assert prov["block"].n_unique() == stats.blocks
    for block, spans in prov.sort("block", "block_start").group_by("block", maintain_order=True):
        starts, ends = spans["block_start"].to_list(), spans["block_end"].to_list()
        assert starts[0] == 0 and ends[-1] == 32 and starts[1:] == ends[:-1]
        assert sum(e - s for s, e in zip(starts, ends)) == 32
        assert (spans["doc_end"] - spans["doc_start"]).to_list() == [e - s for s, e in zip(starts, ends)]


def test_round_trip_block_spans_decode_to_their_documents(packed):
    docs, stats, ds = packed
    texts = dict(docs)
    encoded = {doc_id: [BOS_ID, *ids, EOS_ID] for (doc_id, _), ids in zip(docs, sp().encode(list(texts.values())))}
    pieces: dict[str, list[int]] = {}
    for row in ds.provenance().sort("block", "block_start").collect().iter_rows(named=True):
        block = ds[row["block"]]
        span = block[row["block_start"] : row["block_end"]].tolist()
        # the span is exactly this slice of the document's packed tokens
        assert span == encoded[row["doc_id"]][row["doc_start"] : row["doc_end"]]
        assert row["doc_start"] == len(pieces.get(row["doc_id"], []))  # documents are contiguous
        pieces.setdefault(row["doc_id"], []).extend(span)
        decoded = sp().decode(span)
        if decoded.isascii():
            assert decoded.strip() in texts[row["doc_id"]]
    dropped = set(ds.header["dropped_doc_ids"])
    for doc_id, text in texts.items():
        if doc_id in dropped:
            assert encoded[doc_id][: len(pieces.get(doc_id, []))] == pieces.get(doc_id, [])
        else:
            assert pieces[doc_id] == encoded[doc_id] and sp().decode(pieces[doc_id]) == text
    assert dropped and docs[-1][0] in dropped
    last = ds.spans(len(ds) - 1)
    assert last["block_end"].max() == 32


def test_packing_is_deterministic_and_repacking_replaces_old_files(tmp_path, packed):
    docs, _, ds = packed
    pack_documents(docs, tmp_path, seq_len=32, shard_tokens=32 * 10, batch_size=13)
    first = PackedDataset(tmp_path)
    old_files = sorted(p.name for p in tmp_path.iterdir())
    assert np.array_equal(np.stack(list(first)), np.stack(list(ds)))
    assert first.provenance().collect().equals(ds.provenance().collect())
    pack_documents(docs[:5], tmp_path, seq_len=32)
    again = PackedDataset(tmp_path)
    assert len(again) < len(first)
    assert not set(old_files) - {"header.json"} & {p.name for p in tmp_path.iterdir()}
    assert np.array_equal(again[0], first[0])  # same leading documents, same first block


def test_empty_documents_and_tiny_inputs(tmp_path):
    stats = pack_documents([("a", ""), ("b", "Hello there."), ("c", "")], tmp_path, seq_len=64)
    assert (stats.documents, stats.empty_documents, stats.blocks) == (1, 2, 0)
    assert stats.dropped_tokens == len(sp().encode("Hello there.")) + 2
    ds = PackedDataset(tmp_path)
    assert len(ds) == 0 and ds.provenance().collect().height == 0 and ds.header["dropped_doc_ids"] == ["b"]
    with pytest.raises(IndexError):
        ds[0]
    with pytest.raises(FileNotFoundError, match="header.json"):
        PackedDataset(tmp_path / "nothing")


def test_batch_gathers_int64_blocks(packed):
    _, _, ds = packed
    batch = ds.batch([3, 0, 11])
    assert batch.dtype == np.int64 and batch.shape == (3, 32)
    assert (batch[1] == ds[0]).all() and (batch[2] == ds[11]).all()  # 11 lies in the second shard


def test_repacking_the_same_documents_keeps_the_fingerprint(tmp_path):
    docs = make_documents(30)
    pack_documents(docs, tmp_path / "a", seq_len=64)
    before = PackedDataset(tmp_path / "a")
    pack_documents(docs, tmp_path / "a", seq_len=64)  # a new run: other shard names, other timings
    again = PackedDataset(tmp_path / "a")
    assert again.header["shards"][0]["tokens"] != before.header["shards"][0]["tokens"]
    assert again.fingerprint() == before.fingerprint()
    pack_documents(docs[:-1], tmp_path / "b", seq_len=64)
    assert PackedDataset(tmp_path / "b").fingerprint() != before.fingerprint()


def test_packing_cached_token_ids_gives_the_pack_of_the_texts(tmp_path, packed):
    docs, stats, ds = packed
    ids = [(doc_id, sp().encode(text)) for doc_id, text in docs]  # what a token cache holds: no BOS/EOS
    again = pack_token_ids(ids, tmp_path, seq_len=32, shard_tokens=32 * 10, batch_size=5)
    cached = PackedDataset(tmp_path)
    assert (again.blocks, again.tokens, again.dropped_tokens) == (stats.blocks, stats.tokens, stats.dropped_tokens)
    assert cached.fingerprint() == ds.fingerprint() and np.array_equal(np.stack(list(cached)), np.stack(list(ds)))
    assert cached.provenance().collect().equals(ds.provenance().collect())

import sqlite3
import threading

from hare_assets.lib.generation import GenerationCache, GenerationRequest, cache_key


def test_key_covers_what_changes_the_reply_and_nothing_else():
    base = GenerationRequest(prompt="p", system="s", max_tokens=64, temperature=1, top_p=0.9, seed=1, meta={"row": 1})
    key = cache_key("openai", "m", base)
    assert len(key) == 64
    assert cache_key("openai", "m", GenerationRequest(prompt="p", system="s", max_tokens=64, temperature=1.0, top_p=0.9, seed=1, meta={"row": 2})) == key
    variants = [
        cache_key("vllm", "m", base),
        cache_key("openai", "m2", base),
        cache_key("openai", "m", GenerationRequest(prompt="p", system=None, max_tokens=64, temperature=1, top_p=0.9, seed=1)),
        cache_key("openai", "m", GenerationRequest(prompt="p2", system="s", max_tokens=64, temperature=1, top_p=0.9, seed=1)),
        cache_key("openai", "m", GenerationRequest(prompt="p", system="s", max_tokens=65, temperature=1, top_p=0.9, seed=1)),
        cache_key("openai", "m", GenerationRequest(prompt="p", system="s", max_tokens=64, temperature=0.7, top_p=0.9, seed=1)),
        cache_key("openai", "m", GenerationRequest(prompt="p", system="s", max_tokens=64, temperature=1, top_p=1.0, seed=1)),
        cache_key("openai", "m", GenerationRequest(prompt="p", system="s", max_tokens=64, temperature=1, top_p=0.9, seed=None)),
        cache_key("openai", "m", GenerationRequest(prompt="p", system="s", max_tokens=64, temperature=1, top_p=0.9, seed=1,
                                                   repetition_penalty=1.1)),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_keys_from_before_the_repetition_penalty_stay_valid():
    """The key of a request without a penalty is the one computed before the field existed (a fixed digest)."""
    request = GenerationRequest(prompt="p", system="s", max_tokens=64, temperature=1, top_p=0.9, seed=1)
    assert cache_key("openai", "m", request) == "c521b0f238542d4eda34c08a7aee803204d23659212c8c6fd365b08ed4a85be6"


def test_puts_are_committed_at_once_and_safe_across_threads(tmp_path):
    path = tmp_path / "sub" / "gen.sqlite"
    cache = GenerationCache(path)
    assert cache.get("k") is None
    cache.put("k", "text", 3, 5)
    # another connection (another process, or this one after a crash) sees it without close()
    other = sqlite3.connect(path)
    assert other.execute("SELECT text, prompt_tokens, completion_tokens FROM generations WHERE key='k'").fetchone() == ("text", 3, 5)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()

    def writer(t):
        for i in range(50):
            cache.put(f"{t}-{i}", f"text {t} {i}", i, i)
            assert cache.get(f"{t}-{i}").text == f"text {t} {i}"

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 401
    found = cache.get_many([f"3-{i}" for i in range(50)] + ["missing"] + ["k"] * 3)
    assert len(found) == 51 and found["3-7"].completion_tokens == 7
    cache.close()
    with GenerationCache(path) as reopened:
        assert len(reopened) == 401 and "k" in reopened and reopened.get("k").text == "text"

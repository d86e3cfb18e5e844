"""The Generator's batch path, driven by a small real backend written here (not a stand-in for
the Generator): it fails on request in the ways batch backends do."""

from collections import Counter

from hare_assets.lib.generation import (
    Backend,
    Completion,
    GenerationCache,
    GenerationRequest,
    Generator,
    PermanentError,
    TransientError,
)


class ScriptedBatchBackend(Backend):
    kind = "scripted"
    model = "scripted-v1"

    def __init__(self):
        self.batches: list[list[str]] = []
        self.calls: Counter[str] = Counter()

    def generate_batch(self, requests):
        prompts = [r.prompt for r in requests]
        self.batches.append(prompts)
        for p in prompts:
            self.calls[p] += 1
        if "crash" in prompts and len(prompts) > 1:
            raise RuntimeError("device-side assert")  # takes the whole batch down
        if "flaky-batch" in prompts and len(self.batches) == 1:
            raise TransientError("out of memory")
        out = []
        for p in prompts:
            if p == "crash" or p == "bad":
                out.append(PermanentError(f"cannot generate {p!r}"))
            elif p == "flaky" and self.calls[p] == 1:
                out.append(TransientError("busy"))
            else:
                out.append(Completion(p.upper(), len(p), 2 * len(p)))
        return out


def _requests(*prompts):
    return [GenerationRequest(prompt=p) for p in prompts]


def test_batches_respect_batch_size_and_order(tmp_path):
    backend = ScriptedBatchBackend()
    logs = []
    gen = Generator(backend, GenerationCache(tmp_path / "c.sqlite"), batch_size=3, log=logs.append, log_every=2)
    results = gen.generate(_requests(*"abcdefg"))
    assert [r.text for r in results] == list("ABCDEFG")
    assert [len(b) for b in backend.batches] == [3, 3, 1]
    assert gen.stats.generated == 7 and gen.stats.prompt_tokens == 7 and gen.stats.completion_tokens == 14
    assert any("4/7 done" in m for m in logs) and any("7/7 done" in m for m in logs)
    assert all(r.cached for r in gen.generate(_requests(*"gfedcba")))
    assert len(backend.batches) == 3


def test_batches_group_prompts_of_similar_length():
    """Left-padded batches waste least when their prompts are about as long; results keep the input order."""
    backend = ScriptedBatchBackend()
    prompts = ["x" * n for n in (50, 3, 40, 1, 45, 2)]
    results = Generator(backend, batch_size=3).generate(_requests(*prompts))
    assert [len(p) for b in backend.batches for p in b] == [1, 2, 3, 40, 45, 50]
    assert [r.text for r in results] == [p.upper() for p in prompts]


def test_one_bad_request_does_not_sink_its_batch():
    backend = ScriptedBatchBackend()
    gen = Generator(backend, batch_size=8, backoff_base=0.001)
    results = gen.generate(_requests("a", "bad", "flaky", "b"))
    assert [r.text for r in results] == ["A", None, "FLAKY", "B"]
    assert "cannot generate 'bad'" in results[1].error and results[1].attempts == 1
    assert results[2].attempts == 2  # retried alone
    assert backend.calls == {"a": 1, "bad": 1, "flaky": 2, "b": 1}
    assert gen.stats.as_dict() | {"elapsed_s": 0} == {
        "requests": 4, "cache_hits": 0, "duplicates": 0, "generated": 3, "failures": 1, "retries": 1,
        "prompt_tokens": 7, "completion_tokens": 14, "elapsed_s": 0,
    }


def test_a_crashing_batch_is_retried_request_by_request():
    backend = ScriptedBatchBackend()
    gen = Generator(backend, batch_size=8, backoff_base=0.001)
    results = gen.generate(_requests("a", "crash", "b"))
    assert [r.text for r in results] == ["A", None, "B"]
    assert "cannot generate 'crash'" in results[1].error
    assert backend.batches == [["a", "b", "crash"], ["a"], ["b"], ["crash"]]  # batched by length: "crash" is longest
    assert gen.stats.retries == 3 and gen.stats.failures == 1 and results[0].attempts == 2


def test_a_transient_batch_failure_is_retried_as_a_batch():
    backend = ScriptedBatchBackend()
    gen = Generator(backend, batch_size=8, backoff_base=0.001)
    results = gen.generate(_requests("a", "flaky-batch"))
    assert all(r.ok for r in results) and backend.batches == [["a", "flaky-batch"]] * 2
    assert gen.stats.retries == 1

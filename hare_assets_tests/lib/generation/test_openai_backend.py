import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from hare_assets.lib.generation import GenerationCache, GenerationRequest, Generator, build_backend
from hare_assets.lib.paths import PROJECT_ROOT
from hare_assets_tests.lib.generation.chat_server import ChatServer

KEY = "sk-test-9f8e7d6c5b4a"


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def _generator(server, cache=None, log=None, **kw):
    backend = build_backend("openai", base_url=server.url, model="mixtral-test", api_key=KEY, timeout=kw.pop("timeout", 5.0))
    settings = {"max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05, **kw}
    return Generator(backend, cache, log=log, **settings)


def _requests(n, prefix="doc"):
    return [GenerationRequest(prompt=f"{prefix} {i}", system="be brief", max_tokens=32, seed=i, meta={"i": i}) for i in range(n)]


def test_protocol_retries_and_permanent_errors(server, caplog):
    caplog.set_level(logging.DEBUG)
    server.slow_seconds = 2.0  # well past the client timeout, which stays far above a normal reply on a busy CI machine
    server.plan = {"p500": ["500"], "p429": ["429"], "pslow": ["slow"], "pmalformed": ["malformed"] * 9,
                   "pempty": ["no_choices"] * 9, "p400": ["400"] * 9, "pdown": ["503"] * 9}
    logs: list[str] = []
    gen = _generator(server, log=logs.append, timeout=1.0)
    prompts = ["ok", "p500", "p429", "pslow", "pmalformed", "pempty", "p400", "pdown"]
    results = gen.generate([GenerationRequest(prompt=p, system="sys", temperature=0.5, top_p=0.9, seed=3) for p in prompts])
    by = dict(zip(prompts, results))

    for p in ("ok", "p500", "p429", "pslow"):
        assert by[p].ok and by[p].text == f"echo: {p}" and not by[p].cached
    assert {p: by[p].attempts for p in prompts} == {"ok": 1, "p500": 2, "p429": 2, "pslow": 2, "pmalformed": 1, "pempty": 1, "p400": 1, "pdown": 4}
    assert dict(server.calls) == {"ok": 1, "p500": 2, "p429": 2, "pslow": 2, "pmalformed": 1, "pempty": 1, "p400": 1, "pdown": 4}
    assert "malformed response" in by["pmalformed"].error and "malformed response" in by["pempty"].error
    assert "HTTP 400" in by["p400"].error and "***" in by["p400"].error  # the echoed key is redacted
    assert "gave up after 4 attempts" in by["pdown"].error and "HTTP 503" in by["pdown"].error
    assert by["ok"].prompt_tokens == 1 and by["ok"].completion_tokens == 2
    assert gen.stats.as_dict() | {"elapsed_s": 0} == {
        "requests": 8, "cache_hits": 0, "duplicates": 0, "generated": 4, "failures": 4, "retries": 6,
        "prompt_tokens": 4, "completion_tokens": 8, "elapsed_s": 0,
    }

    # the protocol: messages, sampling and the key in the Authorization header only
    body = next(b for b in server.bodies if b["messages"][-1]["content"] == "ok")
    assert body == {"model": "mixtral-test", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "ok"}],
                    "max_tokens": 1024, "temperature": 0.5, "top_p": 0.9, "seed": 3}
    assert set(server.auth_headers) == {f"Bearer {KEY}"}
    seen = "\n".join([*logs, caplog.text, repr(gen.backend), str(results), str(gen.stats.as_dict())])
    assert KEY not in seen and "mixtral-test" in repr(gen.backend)


def test_bad_url_is_a_connection_error_not_a_crash():
    gen = Generator(build_backend("openai", base_url="http://127.0.0.1:9/v1", model="m", timeout=1), max_retries=1, backoff_base=0.01)
    (result,) = gen.generate([GenerationRequest(prompt="x")])
    assert not result.ok and "connection error" in result.error and result.attempts == 2


def test_interrupted_run_resumes_from_the_cache(server, tmp_path):
    server.delay = 0.02
    cache = GenerationCache(tmp_path / "gen.sqlite")
    requests = _requests(30)

    class Stop(Exception):
        pass

    def log(msg):
        if "done" in msg and int(msg.split(": ")[1].split("/")[0]) >= 10:
            raise Stop  # e.g. Ctrl-C or a crashing callback, mid-run

    with pytest.raises(Stop):
        _generator(server, cache, log=log, max_concurrency=4, log_every=1).generate(requests)
    kept = len(cache)
    assert 10 <= kept < 30
    assert server.total == kept  # every answer that arrived was committed, nothing else was sent

    server.reset_counts()
    gen = _generator(server, cache, max_concurrency=4)
    results = gen.generate(requests)
    assert server.total == 30 - kept  # only the missing requests went out
    assert all(r.ok for r in results) and sum(r.cached for r in results) == kept
    assert [r.text for r in results] == [f"echo: doc {i}" for i in range(30)]
    assert [r.meta["i"] for r in results] == list(range(30))

    server.reset_counts()
    again = _generator(server, cache)
    assert [r.text for r in again.generate(requests)] == [r.text for r in results]
    assert server.total == 0 and again.stats.cache_hits == 30 and again.stats.generated == 0


def test_server_going_down_mid_run_fails_requests_then_resumes(server, tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")
    requests = _requests(20)
    server.serve_limit = 8
    gen = _generator(server, cache, max_concurrency=3, max_retries=1)
    results = gen.generate(requests)  # never raises for failed requests
    assert sum(r.ok for r in results) == 8 and gen.stats.failures == 12 and gen.stats.retries == 12
    assert all("HTTP 503" in r.error for r in results if not r.ok)

    server.serve_limit = None
    server.reset_counts()
    results = gen.generate(requests)
    assert server.total == 12 and all(r.ok for r in results)
    assert gen.stats.cache_hits == 8 and gen.stats.generated == 12


_KILLED_RUN = """
import sys
from hare_assets.lib.generation import GenerationCache, GenerationRequest, Generator, build_backend
backend = build_backend("openai", base_url=sys.argv[1], model="m")
gen = Generator(backend, GenerationCache(sys.argv[2]), max_concurrency=2)
gen.generate([GenerationRequest(prompt=f"doc {i}") for i in range(40)])
"""


def test_killed_process_loses_only_requests_in_flight(server, tmp_path):
    server.delay = 0.03
    path = tmp_path / "gen.sqlite"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, server.url, str(path)], env=env)
    deadline = time.time() + 20
    while server.answered < 10 and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 10 <= server.answered < 40
    kept = len(GenerationCache(path))
    assert server.answered - 2 <= kept <= server.answered  # at most the in-flight answers are lost

    server.reset_counts()
    with GenerationCache(path) as cache:
        gen = Generator(build_backend("openai", base_url=server.url, model="m"), cache)
        results = gen.generate([GenerationRequest(prompt=f"doc {i}") for i in range(40)])
    assert all(r.ok for r in results) and server.total == 40 - kept


def test_concurrency_is_bounded(server):
    server.delay = 0.1
    gen = _generator(server, max_concurrency=3)
    results = gen.generate(_requests(18))
    assert all(r.ok for r in results)
    assert 2 <= server.max_inflight <= 3
    gen.generate(_requests(18, prefix="again"))
    assert len(server.connections) <= 3  # keep-alive connections are reused across calls, not leaked


def test_duplicate_requests_are_sent_once(server):
    gen = _generator(server)
    same = GenerationRequest(prompt="same", meta={"row": 1})
    results = gen.generate([same, GenerationRequest(prompt="same", meta={"row": 2}), GenerationRequest(prompt="other")])
    assert server.calls == {"same": 1, "other": 1}
    assert [r.meta.get("row") for r in results] == [1, 2, None]
    assert results[0].text == results[1].text and gen.stats.duplicates == 1 and gen.stats.generated == 2


def test_response_format_is_honoured_by_a_server_with_structured_outputs_and_rejected_by_one_without():
    """The request carries the task's JSON schema as response_format; a real model behind the local server decodes
    under it, and a server without structured outputs answers 400, which fails the request with what to change."""
    from hare_assets.lib.prompts import load_template
    from hare_assets.lib.tasks import response_schema

    template = load_template("d3", "mcq", "v2")
    passage = ("The Erie Canal opened in 1825. It linked the Hudson River at Albany with Lake Erie at Buffalo, "
               "cut the cost of moving freight by about ninety percent and made New York City the busiest port in the country.")
    request = GenerationRequest(prompt=template.render(seed=passage), system=template.system, max_tokens=160, temperature=0.0,
                                response_schema=response_schema("mcq"))
    model = build_backend("transformers", model="smollm2-135m-instruct", device="cpu")
    with ChatServer(model=model) as server:
        [result] = _generator(server, timeout=300.0, max_retries=0).generate([request])  # a reply takes seconds on a CPU
        assert server.bodies[-1]["response_format"] == {
            "type": "json_schema", "json_schema": {"name": "reply", "schema": json.loads(response_schema("mcq")), "strict": True}}
    assert result.ok, result.error
    item = json.loads(result.text)
    assert list(item) == ["question", "options", "answer"] and len(item["options"]) == 4
    with ChatServer() as server:
        [result] = _generator(server).generate([request])
    assert not result.ok and "HTTP 400" in result.error and "tasks.structured_output: false" in result.error

"""A real OpenAI-compatible chat-completions server for tests (stdlib http.server on 127.0.0.1).

Replies echo the user prompt, or, with `model` (a real local backend such as SmolLM2 through
TransformersBackend), come from that model. A request's `response_format` of type json_schema is
honoured by passing its schema to the model, which constrains decoding to it; a server without a
model, or with `structured=False`, rejects it with a 400 as servers without structured outputs do.
`plan` scripts failures per prompt: a list of behaviours used by successive calls for that prompt
("500", "429", "503", "slow", "malformed", "400", "no_choices"), after which calls succeed.
`serve_limit` makes every call after that many successful answers a 503 (a server going down mid-run).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    def __init__(self, delay: float = 0.0, slow_seconds: float = 1.0, model=None, structured: bool = True):
        self.model = model
        self.structured = structured and model is not None
        self.delay = delay
        self.slow_seconds = slow_seconds
        self.plan: dict[str, list[str]] = {}
        self.serve_limit: int | None = None
        self.calls: Counter[str] = Counter()
        self.answered = 0
        self.granted = 0  # successful answers promised (serve_limit counts these, race-free)
        self.inflight = 0
        self.max_inflight = 0
        self.auth_headers: list[str | None] = []
        self.bodies: list[dict] = []
        self.connections: set[tuple[str, int]] = set()  # client (host, port): one per TCP connection
        self.lock = threading.Lock()
        self.model_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def reset_counts(self) -> None:
        with self.lock:
            self.calls.clear()
            self.answered = 0
            self.granted = 0
            self.max_inflight = 0
            self.auth_headers.clear()
            self.bodies.clear()

    def __enter__(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path != "/v1/chat/completions":
                    return self._send(404, '{"error": "not found"}')
                prompt = body["messages"][-1]["content"]
                auth = self.headers.get("Authorization")
                with server.lock:
                    n = server.calls[prompt]
                    server.calls[prompt] += 1
                    server.auth_headers.append(auth)
                    server.bodies.append(body)
                    server.connections.add(self.client_address)
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                    steps = server.plan.get(prompt, [])
                    behaviour = steps[n] if n < len(steps) else "ok"
                    if behaviour == "ok" and server.serve_limit is not None:
                        behaviour = "ok" if server.granted < server.serve_limit else "503"
                    server.granted += behaviour == "ok"
                try:
                    time.sleep(server.delay)
                    self._respond(behaviour, body, prompt, auth)
                finally:
                    with server.lock:
                        server.inflight -= 1

            def _respond(self, behaviour: str, body: dict, prompt: str, auth: str | None) -> None:
                if behaviour == "slow":
                    time.sleep(server.slow_seconds)
                    behaviour = "ok"
                if behaviour in ("500", "503"):
                    return self._send(int(behaviour), '{"error": {"message": "server busy"}}')
                if behaviour == "429":
                    return self._send(429, '{"error": {"message": "rate limited"}}', {"Retry-After": "0"})
                if behaviour == "400":  # a careless server that echoes the request's credentials
                    return self._send(400, json.dumps({"error": {"message": f"bad request (Authorization: {auth})"}}))
                if behaviour == "malformed":
                    return self._send(200, '{"choices": [{"message": {"content": "trunc')
                if behaviour == "no_choices":
                    return self._send(200, '{"object": "chat.completion", "choices": []}')
                schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
                if schema is not None and not server.structured:
                    return self._send(400, '{"error": {"message": "response_format json_schema is not supported"}}')
                if server.model is None:
                    content, usage = f"echo: {prompt}", (len(prompt.split()), len(prompt.split()) + 1)
                else:
                    from hare_assets.lib.generation import GenerationRequest

                    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), None)
                    request = GenerationRequest(
                        prompt=prompt, system=system, max_tokens=body.get("max_tokens", 256),
                        temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0), seed=body.get("seed"),
                        response_schema=None if schema is None else json.dumps(schema))
                    with server.model_lock:  # one generation at a time on the one model
                        done = server.model.generate_batch([request])[0]
                    content, usage = done.text, (done.prompt_tokens, done.completion_tokens)
                with server.lock:
                    server.answered += 1
                reply = {
                    "id": "cmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                }
                self._send(200, json.dumps(reply))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

"""Any OpenAI-compatible chat-completions server (`vllm serve`, TGI, llama.cpp, a hosted API).

The API key travels only in the `Authorization` header: it is kept out of `repr`, logs and
error messages (a server that echoes request headers in an error body is redacted too).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import requests

from hare_assets.lib.generation.types import Backend, Completion, GenerationRequest, PermanentError, TransientError

_RETRY_STATUS = {408, 429}  # request timeout, rate limit; plus every 5xx
_BODY_SNIPPET = 200


class OpenAICompatBackend(Backend):
    kind = "openai"
    concurrent = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        extra_body: dict[str, Any] | None = None,
    ):
        if not base_url or not model:
            raise ValueError("the openai backend needs base_url (e.g. http://127.0.0.1:8000/v1) and model")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.extra_body = dict(extra_body or {})
        self._api_key = api_key or None
        # Sessions are lent to one request at a time (requests does not promise that a Session is
        # thread-safe) and reused, so there are never more than the peak concurrency of them.
        self._idle: list[requests.Session] = []
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _borrow(self) -> requests.Session:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        session = requests.Session()
        session.headers["Content-Type"] = "application/json"
        if self._api_key:
            session.headers["Authorization"] = f"Bearer {self._api_key}"
        with self._lock:
            self._sessions.append(session)
        return session

    def _give_back(self, session: requests.Session) -> None:
        with self._lock:
            self._idle.append(session)

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": request.prompt})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": int(request.max_tokens),
            "temperature": float(request.temperature),
            "top_p": float(request.top_p),
            **self.extra_body,
        }
        if request.seed is not None:
            body["seed"] = int(request.seed)
        if request.repetition_penalty != 1.0:  # not OpenAI's API, but vLLM, TGI and llama.cpp servers take it
            body["repetition_penalty"] = float(request.repetition_penalty)
        if request.response_schema is not None:  # structured outputs: the server constrains the reply to the schema
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "reply", "schema": json.loads(request.response_schema), "strict": True}}
        return body

    def generate_one(self, request: GenerationRequest) -> Completion:
        session = self._borrow()
        try:
            response = session.post(self.url, json=self.payload(request), timeout=self.timeout)
        except requests.Timeout as exc:
            raise TransientError(self.redact(f"timeout after {self.timeout}s: {exc}")) from None
        except requests.ConnectionError as exc:
            raise TransientError(self.redact(f"connection error: {exc}")) from None
        except requests.RequestException as exc:
            raise PermanentError(self.redact(f"request failed: {type(exc).__name__}: {exc}")) from None
        finally:
            self._give_back(session)
        status = response.status_code
        if status != 200:
            detail = self.redact(f"HTTP {status} from {self.url}: {response.text[:_BODY_SNIPPET]!r}")
            if status in _RETRY_STATUS or status >= 500:
                raise TransientError(detail, _retry_after(response.headers.get("Retry-After")))
            if request.response_schema is not None and "response_format" in response.text:
                detail += " (this server does not take response_format json_schema: set tasks.structured_output: false)"
            raise PermanentError(detail)
        return self._parse(response.text)

    def _parse(self, body: str) -> Completion:
        try:
            data = json.loads(body)
            content = data["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                raise TypeError(f"content is {type(content).__name__}")
            usage = data.get("usage") or {}
            return Completion(content, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise PermanentError(self.redact(f"malformed response ({type(exc).__name__}: {exc}): {body[:_BODY_SNIPPET]!r}")) from None

    def redact(self, message: str) -> str:
        return message.replace(self._api_key, "***") if self._api_key else message

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
            self._idle.clear()

    def __repr__(self) -> str:
        key = "***" if self._api_key else None
        return f"OpenAICompatBackend(base_url={self.base_url!r}, model={self.model!r}, api_key={key!r}, timeout={self.timeout})"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff

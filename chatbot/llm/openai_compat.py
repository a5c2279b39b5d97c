"""Back end for any server speaking the OpenAI chat-completions API (vLLM, llama.cpp, TGI, OpenAI)."""

from __future__ import annotations

import json
import math
import os
import threading
from typing import Any

import httpx

from .base import ChatMessage, Generation, LLMError, TokenCallback


def _estimate_tokens(chars: int) -> int:
    # Rough rule of thumb (~4 characters per token for English BPE vocabularies); only used when
    # the server does not report usage, so billing/metrics stay approximately right.
    return math.ceil(chars / 4)


def _parse_chunk(data: str) -> tuple[str | None, dict[str, Any] | None]:
    """Return (content delta, usage) of one streamed chunk; LLMError on anything malformed."""
    try:
        chunk = json.loads(data)
        if "error" in chunk:
            raise LLMError(f"LLM server error in stream: {str(chunk['error'])[:300]}")
        delta = None
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:
                delta = (choice.get("delta") or {}).get("content")
        usage = chunk.get("usage") or None
    except (ValueError, AttributeError, TypeError) as exc:
        # ValueError covers bad JSON; the others a chunk of the wrong shape.
        raise LLMError(f"malformed stream chunk {data[:200]!r}: {exc}") from exc
    if (delta is not None and not isinstance(delta, str)) or (usage is not None and not isinstance(usage, dict)):
        raise LLMError(f"malformed stream chunk {data[:200]!r}")
    return delta, usage


class OpenAICompatibleBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 60.0,
        temperature: float = 0.2,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_name = model
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self._http: httpx.Client | None = None
        self._http_pid = 0
        self._http_lock = threading.Lock()

    def _client(self) -> httpx.Client:
        """One HTTP client per process, shared by its threads (httpx's client is thread-safe): a client
        per call built a TLS context each time, loading the CA bundle, which was the large-model
        worker's biggest CPU cost per answer (py-spy, 32 answers at once). A forked child builds its own:
        a connection pool must not cross a fork."""
        pid = os.getpid()
        with self._http_lock:
            if self._http is None or self._http_pid != pid:
                # As many streams at once as the worker runs (TANDEM_LLM_CONCURRENCY), never waiting
                # for a place in the pool.
                self._http = httpx.Client(
                    timeout=self.timeout, limits=httpx.Limits(max_connections=None, max_keepalive_connections=64)
                )
                self._http_pid = pid
            return self._http

    def warm_up(self) -> None:
        """Nothing to load; the server may not even be up yet, which generate() reports as LLMError."""

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int,
        on_token: TokenCallback | None = None,
    ) -> Generation:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        try:
            with self._client().stream("POST", self.url, json=payload, headers=headers) as resp:
                if not resp.is_success:
                    body = resp.read().decode("utf-8", "replace")[:300]
                    raise LLMError(f"LLM server returned HTTP {resp.status_code}: {body}")
                for line in resp.iter_lines():
                    # SSE: ignore blank separators, comments (":") and other fields (event:, id:).
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    delta, chunk_usage = _parse_chunk(data)
                    usage = chunk_usage or usage
                    if delta:
                        parts.append(delta)
                        if on_token is not None:
                            on_token(delta)
        except httpx.TimeoutException as exc:
            raise LLMError(f"LLM request to {self.url} timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"LLM request to {self.url} failed: {exc!r}") from exc

        text = "".join(parts)
        try:
            input_tokens = int(usage["prompt_tokens"]) if usage else None
            output_tokens = int(usage["completion_tokens"]) if usage else None
        except (KeyError, TypeError, ValueError):
            input_tokens = output_tokens = None
        if input_tokens is None or output_tokens is None:
            input_tokens = _estimate_tokens(sum(len(m.get("content", "")) for m in messages))
            output_tokens = _estimate_tokens(len(text))
        return Generation(text=text, input_tokens=input_tokens, output_tokens=output_tokens, model=self.model_name)

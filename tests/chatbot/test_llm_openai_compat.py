"""OpenAICompatibleBackend against a real (tiny) streaming HTTP server on localhost."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chatbot.llm import LLMError
from chatbot.llm.openai_compat import OpenAICompatibleBackend

DELTAS = ["Hel", "lo", ", ", "wor", "ld", "!"]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


class FakeServer(ThreadingHTTPServer):
    mode = "ok"  # "ok" | "no-usage" | "error" | "garbage"
    requests: list[tuple[dict[str, str], dict[str, Any]]]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The client closing a stream early is part of some tests, not a failure worth printing.
        pass


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((dict(self.headers), body))
        mode = self.server.mode
        if self.path != "/v1/chat/completions" or mode == "error":
            payload = b'{"error": {"message": "model exploded"}}'
            self.send_response(500 if mode == "error" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(obj: Any) -> None:
            data = obj if isinstance(obj, str) else json.dumps(obj)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        self.wfile.write(b": keep-alive comment\n\n")
        event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        for text in DELTAS:
            event({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
            if mode == "garbage":
                event("{not json")
        event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if mode == "ok":
            event({"choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 6, "total_tokens": 23}})
        event("[DONE]")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer(("127.0.0.1", 0), Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def backend_for(srv: FakeServer, **kwargs: Any) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(f"http://127.0.0.1:{srv.server_address[1]}/v1/", "test-model", **kwargs)


def test_streams_deltas_in_order_and_reads_usage(server: FakeServer) -> None:
    seen: list[str] = []
    gen = backend_for(server).generate(MESSAGES, max_tokens=32, on_token=seen.append)
    assert seen == DELTAS
    assert gen.text == "".join(seen) == "Hello, world!"
    assert (gen.input_tokens, gen.output_tokens, gen.model) == (17, 6, "test-model")
    headers, body = server.requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == MESSAGES and body["max_tokens"] == 32 and body["model"] == "test-model"


def test_auth_header_only_with_key(server: FakeServer) -> None:
    backend_for(server).generate(MESSAGES, max_tokens=8)
    backend_for(server, api_key="sk-secret").generate(MESSAGES, max_tokens=8)
    without, with_key = (headers for headers, _ in server.requests)
    assert "Authorization" not in without
    assert with_key["Authorization"] == "Bearer sk-secret"


def test_missing_usage_is_estimated(server: FakeServer) -> None:
    server.mode = "no-usage"
    gen = backend_for(server).generate(MESSAGES, max_tokens=8)
    assert gen.text == "Hello, world!"
    assert gen.output_tokens == 4  # ceil(13 chars / 4)
    assert gen.input_tokens == 5  # ceil((9 + 9) chars / 4)


def test_server_error_raises_with_status(server: FakeServer) -> None:
    server.mode = "error"
    with pytest.raises(LLMError, match="500") as info:
        backend_for(server).generate(MESSAGES, max_tokens=8)
    assert "model exploded" in str(info.value)


def test_malformed_json_raises(server: FakeServer) -> None:
    server.mode = "garbage"
    with pytest.raises(LLMError, match="malformed"):
        backend_for(server).generate(MESSAGES, max_tokens=8)


def test_connection_refused_raises() -> None:
    with socket.socket() as sock:  # grab a free port, then close it so nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAICompatibleBackend(f"http://127.0.0.1:{port}/v1", "m", timeout=5)
    with pytest.raises(LLMError, match="failed"):
        backend.generate(MESSAGES, max_tokens=8)

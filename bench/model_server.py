"""A stand-in OpenAI-compatible model server for benchmarks and fault tests: a real HTTP server in its
own process that streams chat completions the way vLLM or llama.cpp's server does, with a behaviour you
choose and can change while it runs.

    python bench/model_server.py --port 8001 --seconds 2      # every answer takes 2 s, streamed
    curl -X POST localhost:8001/control -d '{"mode": "garbage"}'

Modes: "ok" (stream `--words` words over `--seconds`, the first after `--first-token` seconds),
"garbage" (a valid first chunk, then chunks that are not JSON), "error" (HTTP 500). Requests are served
at once, each in a thread, as a batching server would: 32 requests of 2 s take 2 s, not 64.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = (
    "You can return most items within thirty days of delivery for a full refund, as long as they are unused "
    "and in their original packaging. Start a return from your orders page and we will email a label."
)


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], settings: dict[str, Any]) -> None:
        super().__init__(address, Handler)
        self.settings = settings
        self.lock = threading.Lock()
        self.requests = 0
        # Answers being written now, and the most at once so far.
        self.active = 0
        self.peak = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading (a killed worker, an answer cut short) is expected here.
        pass


class Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.server.lock:
            self._json(
                200,
                {**self.server.settings, "requests": self.server.requests, "peak": self.server.peak},
            )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path == "/control":
            with self.server.lock:
                if body.pop("reset_counts", False):
                    self.server.requests = self.server.peak = 0
                self.server.settings.update(body)
                self._json(200, self.server.settings)
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        with self.server.lock:
            self.server.requests += 1
            settings = dict(self.server.settings)
        if settings["mode"] == "error":
            self._json(500, {"error": {"message": "the model server is failing"}})
            return
        with self.server.lock:
            self.server.active += 1
            self.server.peak = max(self.server.peak, self.server.active)
        try:
            self._stream(settings)
        finally:
            with self.server.lock:
                self.server.active -= 1

    def _stream(self, settings: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        words = [f"{word} " for word in ANSWER.split()][: int(settings["words"])]
        time.sleep(float(settings["first_token"]))
        pause = max(0.0, float(settings["seconds"]) - float(settings["first_token"])) / max(1, len(words) - 1)
        for number, word in enumerate(words):
            if number:
                time.sleep(pause)
            self._event({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
            if settings["mode"] == "garbage":
                self._event("{this is not json")
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._event({"choices": [], "usage": {"prompt_tokens": 400, "completion_tokens": len(words)}})
        self._event("[DONE]")

    def _event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--seconds", type=float, default=2.0, help="time to write a whole answer")
    parser.add_argument("--first-token", type=float, default=0.2, help="time to the first token")
    parser.add_argument("--words", type=int, default=20, help="words per answer")
    parser.add_argument("--mode", choices=("ok", "garbage", "error"), default="ok")
    args = parser.parse_args()
    settings = {"mode": args.mode, "seconds": args.seconds, "first_token": args.first_token, "words": args.words}
    server = ModelServer((args.host, args.port), settings)
    print(f"model server on http://{args.host}:{args.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Round trips through a running Tandem server (start it with `python3 scripts/tandem.py run`).

    .venv/bin/python bench/chat_roundtrip.py --server http://localhost:8000 [--routine 100]

Routine questions: time from sending a message to receiving its small-tier answer, one chat at a
time. Then escalated questions, each in a fresh chat (so the prompt holds no earlier messages): time to
the first streamed token, tokens per second, and total. `bench/large_direct.py` runs the same prompt on
the same back end in one process, without the stack, for comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

from websockets.sync.client import connect
from websockets.typing import Origin

ROUTINE = ["How do I reset my password?", "How do I get a VAT invoice?", "Do you price match?"]
HARD = "Can I return a sofa I bought 40 days ago that my cat scratched?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--routine", type=int, default=100)
    parser.add_argument("--escalated", type=int, default=3, help="escalated questions, one chat each")
    args = parser.parse_args()
    url = args.server.replace("http", "ws", 1) + "/ws/chat/"
    with connect(url, origin=Origin(args.server)) as socket:
        socket.recv(timeout=10)
        timings = []
        for index in range(args.routine):
            client_id = uuid.uuid4().hex
            started = time.perf_counter()
            socket.send(json.dumps({"type": "message", "id": client_id, "text": ROUTINE[index % len(ROUTINE)]}))
            while True:
                frame = json.loads(socket.recv(timeout=30))
                if frame["type"] in ("answer", "escalated") and frame.get("reply_to") == client_id:
                    break
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        print(
            f"routine answers ({args.routine}, one chat): p50 {statistics.median(timings):.1f} ms, "
            f"p99 {timings[int(len(timings) * 0.99)]:.1f} ms"
        )

    firsts, rates, totals = [], [], []
    for _ in range(args.escalated):
        with connect(url, origin=Origin(args.server)) as socket:
            socket.recv(timeout=10)
            client_id = uuid.uuid4().hex
            started = time.perf_counter()
            socket.send(json.dumps({"type": "message", "id": client_id, "text": HARD}))
            first_token = None
            tokens = 0
            while True:
                frame = json.loads(socket.recv(timeout=300))
                if frame["type"] == "token" and frame["reply_to"] == client_id:
                    tokens += 1
                    first_token = first_token or time.perf_counter()
                if frame["type"] == "answer" and frame["reply_to"] == client_id:
                    break
            done = time.perf_counter()
        if first_token is None:
            print("escalated question: answered without streaming")
            return
        firsts.append(first_token - started)
        rates.append((tokens - 1) / (done - first_token) if done > first_token else float("nan"))
        totals.append(done - started)
        print(f"  escalated: first token {firsts[-1]:.2f} s, {tokens} token frames, {rates[-1]:.1f} tokens/s")
    if not firsts:
        return
    print(
        f"escalated questions ({args.escalated}, medians): first token after {statistics.median(firsts):.2f} s, "
        f"{statistics.median(rates):.1f} tokens/s, answer after {statistics.median(totals):.2f} s"
    )


if __name__ == "__main__":
    main()

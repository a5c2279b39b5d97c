"""Many customers at once against a running Tandem server (start it with `python3 scripts/tandem.py run`).

    .venv/bin/python bench/chat_load.py --server http://localhost:8000 --chats 100 --messages 10 --think 2

Each chat opens its own WebSocket and asks routine questions one after another: it waits for each
answer, then "reads and types" for a random pause averaging --think seconds (uniform between half and
one and a half times it) before the next question. People in a support chat pause far longer than that;
--think 0 sends the next question the moment an answer arrives, which measures the server's capacity
(answers/s) rather than the wait at a given load. Prints the round-trip p50/p99 (message sent → answer
received) over all chats, the offered and answered rates. Only loopback addresses are meant here; the run
is bounded by --chats × --messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid

from websockets.asyncio.client import connect
from websockets.typing import Origin

ROUTINE = ["How do I reset my password?", "How do I get a VAT invoice?", "Do you price match?"]


async def chat(url: str, origin: str, messages: int, think: float, timings: list[float], failures: list[str]) -> None:
    try:
        async with connect(url, origin=Origin(origin), open_timeout=60) as socket:
            await asyncio.wait_for(socket.recv(), 60)  # the session frame
            # Chats start spread over one pause, as customers do, not all in the same millisecond.
            await asyncio.sleep(random.uniform(0, think))
            for index in range(messages):
                if index:
                    await asyncio.sleep(random.uniform(think / 2, think * 1.5))
                client_id = uuid.uuid4().hex
                started = time.perf_counter()
                await socket.send(json.dumps({"type": "message", "id": client_id, "text": ROUTINE[index % 3]}))
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                    if frame["type"] in ("answer", "escalated") and frame.get("reply_to") == client_id:
                        break
                timings.append((time.perf_counter() - started) * 1000)
    except Exception as error:  # noqa: BLE001 - a benchmark reports failures rather than stopping
        failures.append(f"{type(error).__name__}: {error}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--think", type=float, default=2.0, help="mean pause between questions, seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    url = args.server.replace("http", "ws", 1) + "/ws/chat/"
    timings: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(chat(url, args.server, args.messages, args.think, timings, failures) for _ in range(args.chats))
    )
    elapsed = time.perf_counter() - started
    timings.sort()
    if not timings:
        print(f"no answers; failures: {failures[:3]}")
        return
    print(
        f"offered about {args.chats / args.think if args.think else float('inf'):.0f} questions/s; "
        f"{args.chats} concurrent chats × {args.messages} routine questions, pause {args.think:g} s: "
        f"p50 {statistics.median(timings):.1f} ms, p99 {timings[int(len(timings) * 0.99)]:.1f} ms, "
        f"{len(timings) / elapsed:.0f} answers/s, {len(failures)} chats failed"
    )
    for failure in failures[:3]:
        print("  failure:", failure)


if __name__ == "__main__":
    asyncio.run(main())

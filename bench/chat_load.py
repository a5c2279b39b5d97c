"""Many customers at once against a running Tandem server (start it with `python3 scripts/tandem.py run`).

    .venv/bin/python bench/chat_load.py --server http://localhost:8000 --chats 100 --messages 10

Each chat opens its own WebSocket and asks routine questions one after another, waiting for each answer.
Prints the round-trip p50/p99 (message sent → answer received) over all chats, and the answers per second.
Only loopback addresses are meant here; the run is bounded by --chats × --messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

from websockets.asyncio.client import connect
from websockets.typing import Origin

ROUTINE = ["How do I reset my password?", "How do I get a VAT invoice?", "Do you price match?"]


async def chat(url: str, origin: str, messages: int, timings: list[float], failures: list[str]) -> None:
    try:
        async with connect(url, origin=Origin(origin), open_timeout=60) as socket:
            await asyncio.wait_for(socket.recv(), 60)  # the session frame
            for index in range(messages):
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
    args = parser.parse_args()
    url = args.server.replace("http", "ws", 1) + "/ws/chat/"
    timings: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(chat(url, args.server, args.messages, timings, failures) for _ in range(args.chats)))
    elapsed = time.perf_counter() - started
    timings.sort()
    if not timings:
        print(f"no answers; failures: {failures[:3]}")
        return
    print(
        f"{args.chats} concurrent chats × {args.messages} routine questions: "
        f"p50 {statistics.median(timings):.1f} ms, p99 {timings[int(len(timings) * 0.99)]:.1f} ms, "
        f"{len(timings) / elapsed:.0f} answers/s, {len(failures)} chats failed"
    )
    for failure in failures[:3]:
        print("  failure:", failure)


if __name__ == "__main__":
    asyncio.run(main())

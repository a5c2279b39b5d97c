"""A flood of malformed frames against a running Tandem server, with ordinary customers asking at the same
time (start the server with `python3 scripts/tandem.py run`).

    TANDEM_CLIENT_IP_HEADER=X-Forwarded-For python3 scripts/tandem.py run      # then:
    .venv/bin/python bench/bad_input.py --server http://localhost:8000 --frames 10000 --sockets 20 --chats 20

--sockets connections share --frames malformed frames of every kind in tests/malformed.py (lone
surrogates, control characters, 5,000-digit numbers, NaN, deep nesting, oversized and binary frames …),
each sent in order, and check that every one is answered by an `error` frame with the documented code
and that no socket is dropped. Meanwhile --chats customers each ask --messages routine questions, a
--think pause apart, and wait for the answers (--frames 0 gives the same run without the flood).
Prints the counts: frames sent, errors received, wrong codes, sockets dropped,
`server_error` frames, and the ordinary customers' questions answered and their p50/p99 round trip.
Each socket sends its own X-Forwarded-For address, as customers behind a reverse proxy would: start the
server with TANDEM_CLIENT_IP_HEADER=X-Forwarded-For, or flood control counts every client of this script
as one address. Malformed frames are refused for what they are, never as `rate_limited`; the ordinary
customers wait out any `rate_limited` (retry_after) and send again, as the widget does. Only loopback
addresses are meant here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.malformed import MALFORMED  # noqa: E402 - the catalogue lives with the tests

ROUTINE = ["How do I reset my password?", "How do I get a VAT invoice?", "Do you price match?"]
# Sent without waiting, at most this many unanswered at once per socket.
WINDOW = 50


def headers(number: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"}


async def flood(url: str, origin: str, frames: int, offset: int, tally: Counter[str]) -> None:
    kinds = [MALFORMED[(offset + index) % len(MALFORMED)] for index in range(frames)]
    try:
        async with connect(
            url, origin=Origin(origin), open_timeout=60, max_size=None, additional_headers=headers(offset + 1)
        ) as socket:
            await asyncio.wait_for(socket.recv(), 60)  # the session frame
            sent = 0
            for received, (_, _, code) in enumerate(kinds):
                while sent < len(kinds) and sent - received < WINDOW:
                    await socket.send(kinds[sent][1])
                    sent += 1
                    tally["sent"] += 1
                frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                if frame.get("type") != "error":
                    tally["not an error frame"] += 1
                elif frame.get("code") == "server_error":
                    tally["server_error"] += 1
                elif frame.get("code") != code:
                    tally["wrong code"] += 1
                else:
                    tally["errors"] += 1
    except ConnectionClosed:
        tally["sockets dropped"] += 1
    except Exception as error:  # noqa: BLE001 - a benchmark reports failures rather than stopping
        tally[f"failed: {type(error).__name__}"] += 1


async def customer(
    url: str, origin: str, number: int, messages: int, think: float, timings: list[float], tally: Counter[str]
) -> None:
    try:
        async with connect(url, origin=Origin(origin), open_timeout=60, additional_headers=headers(number)) as socket:
            await asyncio.wait_for(socket.recv(), 60)
            for index in range(messages):
                if index:
                    await asyncio.sleep(think)
                client_id = uuid.uuid4().hex
                started = time.perf_counter()
                frame_text = json.dumps({"type": "message", "id": client_id, "text": ROUTINE[index % 3]})
                await socket.send(frame_text)
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                    if frame["type"] in ("answer", "escalated") and frame.get("reply_to") == client_id:
                        break
                    if frame["type"] == "error" and frame.get("code") == "rate_limited":
                        tally["customer waits (rate_limited)"] += 1
                        await asyncio.sleep(frame["retry_after"])
                        await socket.send(frame_text)
                    elif frame["type"] == "error":
                        tally["customer errors"] += 1
                timings.append((time.perf_counter() - started) * 1000)
                tally["answered"] += 1
    except Exception as error:  # noqa: BLE001
        tally[f"customer failed: {type(error).__name__}"] += 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--sockets", type=int, default=20)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--think", type=float, default=1.5, help="ordinary customers' pause between questions, s")
    args = parser.parse_args()
    url = args.server.replace("http", "ws", 1) + "/ws/chat/"
    tally: Counter[str] = Counter()
    timings: list[float] = []
    share, extra = divmod(args.frames, max(1, args.sockets))
    started = time.perf_counter()
    await asyncio.gather(
        *(flood(url, args.server, share + (i < extra), i, tally) for i in range(args.sockets)),
        *(
            customer(url, args.server, 100_000 + i, args.messages, args.think, timings, tally)
            for i in range(args.chats)
        ),
    )
    elapsed = time.perf_counter() - started
    timings.sort()
    print(
        f"{tally['sent']} malformed frames ({len(MALFORMED)} kinds) over {args.sockets} sockets in {elapsed:.1f} s: "
        f"{tally['errors']} answered with the right error, {tally['wrong code']} wrong code, "
        f"{tally['not an error frame']} not an error, {tally['server_error']} server_error, "
        f"{tally['sockets dropped']} sockets dropped"
    )
    asked = args.chats * args.messages
    latency = "no answers"
    if timings:
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        latency = f"p50 {statistics.median(timings):.1f} ms, p99 {p99:.1f} ms"
    print(f"ordinary customers: {tally['answered']} / {asked} questions answered, {latency}")
    others = {key: value for key, value in tally.items() if "failed" in key or key.startswith("customer ")}
    if others:
        print("  also:", others)


if __name__ == "__main__":
    asyncio.run(main())

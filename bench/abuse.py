"""Hundreds of ordinary customers while abusive clients flood the server, against a running Tandem server.

    TANDEM_CLIENT_IP_HEADER=X-Forwarded-For python3 scripts/tandem.py run      # then:
    .venv/bin/python bench/abuse.py --server http://localhost:8000 --chats 500 --messages 10 --abusers 25
    .venv/bin/python bench/abuse.py --server http://localhost:8000 --chats 500 --messages 10 --abusers 0
    (--timeline adds the customers' p99 per 10 s of the run, or per --step seconds: when the slow round trips were)

--chats customers each ask --messages questions, taken from the demo knowledge base's own phrasings
(seeded, varied; most are routine, a few escalate), a --think pause apart (uniform between half and 1.5
times it), each from an address of its own, as behind a reverse proxy. A customer told `rate_limited`
waits `retry_after` and sends the same message again, as the widget does; the round trip runs from the
first send to the answer (or the escalation notice; once people own the chat, the acknowledgement,
which is all a customer gets until an agent replies). Meanwhile each of --abusers clients, from one
address each, keeps --abuser-sockets sockets open (reopening any the server closes or refuses, each one
a new conversation) and sends messages on every one as fast as the server answers them (up to 20
unanswered at a time), ignoring `retry_after`; the abusers run in a process of their own, at the lowest
CPU priority (they would load the server from their own machines, not take its CPU). Prints the
customers' questions answered and lost and their p50 / p99, and what the abusers sent and got back.
Start the server with TANDEM_CLIENT_IP_HEADER=X-Forwarded-For (or every client counts as one address).
The client runs on the same machine as the server (it takes CPU too), and only loopback addresses are
meant here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

KB = Path(__file__).resolve().parent.parent / "support" / "knowledge" / "data" / "demo_kb.json"
SPAM = ["hello", "HELLO??", "answer me", "free money", "test test test", "asdfghjkl", "is anyone there"]
WINDOW = 20


def questions(seed: int) -> list[str]:
    articles = json.loads(KB.read_text())["articles"]
    phrasings = [phrasing for article in articles for phrasing in article.get("phrasings", [])]
    random.Random(seed).shuffle(phrasings)
    return phrasings


def address(prefix: str, number: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"{prefix}.{number // 256 % 256}.{number % 256}"}


async def customer(
    url: str,
    origin: str,
    number: int,
    asks: list[str],
    think: float,
    timings: list[float],
    tally: Counter[str],
    by_kind: dict[str, list[float]],
    sent_at: list[tuple[float, float]],
) -> None:
    answered = 0
    kind = ""
    with_people = False
    # Where a customer that fails was: opening the socket, waiting for the session frame, or waiting
    # for an answer (and how far into the run).
    phase = "handshake"
    began = time.perf_counter()
    try:
        async with connect(
            url, origin=Origin(origin), open_timeout=60, additional_headers=address("10.1", number)
        ) as socket:
            phase = "session frame"
            await asyncio.wait_for(socket.recv(), 60)  # the session frame
            phase = "answer"
            await asyncio.sleep(random.uniform(0, think))
            for index, text in enumerate(asks):
                if index:
                    await asyncio.sleep(random.uniform(think / 2, think * 1.5))
                client_id = uuid.uuid4().hex
                frame_text = json.dumps({"type": "message", "id": client_id, "text": text})
                started = time.perf_counter()
                await socket.send(frame_text)
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                    if frame["type"] == "escalated" and frame.get("destination") == "people":
                        # People own the chat from now on, whichever message this answers: an earlier
                        # question's large-model job can pass its first-token deadline while the
                        # customer is on the next one, and the next message then gets only its ack.
                        with_people = True
                    if frame["type"] in ("answer", "escalated") and frame.get("reply_to") == client_id:
                        if frame["type"] == "escalated":
                            kind = f"escalated to {frame.get('destination')}"
                        else:
                            kind = f"answered by the {frame.get('tier')} tier"
                        tally[kind] += 1
                        break
                    if frame["type"] == "ack" and frame.get("id") == client_id and with_people:
                        # People own the conversation: the message waits for an agent, and the ack is
                        # all the customer gets now.
                        kind = "acknowledged for an agent"
                        tally[kind] += 1
                        break
                    if frame["type"] == "error" and frame.get("code") == "rate_limited":
                        tally["customer waits (rate_limited)"] += 1
                        await asyncio.sleep(float(frame["retry_after"]))
                        await socket.send(frame_text)
                    elif frame["type"] == "error":
                        tally[f"customer error {frame.get('code')}"] += 1
                timings.append((time.perf_counter() - started) * 1000)
                sent_at.append((started, timings[-1]))
                by_kind.setdefault(kind, []).append(timings[-1])
                answered += 1
    except Exception as error:  # noqa: BLE001 - a benchmark reports failures rather than stopping
        tally[f"customer failed: {type(error).__name__} waiting for the {phase}"] += 1
        tally[f"customer failed {int((time.perf_counter() - began) // 30) * 30}+ s into the run"] += 1
    tally["lost"] += len(asks) - answered


async def abuser_socket(
    url: str, origin: str, prefix: str, number: int, stop: float, started: float, tally: Counter[str]
) -> None:
    while time.monotonic() < stop:
        try:
            async with connect(
                url, origin=Origin(origin), open_timeout=30, additional_headers=address(prefix, number)
            ) as socket:
                first = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if first.get("type") != "session":
                    tally[f"abuser connection refused ({first.get('code')})"] += 1
                    await asyncio.sleep(0.2)
                    continue
                tally["abuser connections"] += 1
                # perf_counter is the system's monotonic clock: the customers' process reads the same.
                tally.setdefault("abusers' first session, s into the run", round(time.perf_counter() - started, 1))  # type: ignore[arg-type]
                sent = received = 0
                while time.monotonic() < stop:
                    while sent - received < WINDOW:
                        text = random.choice(SPAM)
                        await socket.send(json.dumps({"type": "message", "id": uuid.uuid4().hex, "text": text}))
                        sent += 1
                        tally["abuser frames sent"] += 1
                    frame = json.loads(await asyncio.wait_for(socket.recv(), max(0.1, stop - time.monotonic())))
                    if frame["type"] == "error":
                        received += 1
                        tally[f"abuser got {frame.get('code')}"] += 1
                    elif frame["type"] == "ack":
                        received += 1
                        tally["abuser messages accepted"] += 1
        except (ConnectionClosed, InvalidStatus, OSError, TimeoutError) as error:
            tally[f"abuser socket closed ({type(error).__name__})"] += 1
            await asyncio.sleep(0.2)


def run_abusers(url: str, origin: str, abusers: int, sockets: int, seconds: float, started: float) -> Counter[str]:
    # Real abusers flood from their own machines: they load the server with frames, not by taking its
    # CPU. Here they share its two cores, so they run at the lowest priority and use what is left.
    os.nice(19)
    tally: Counter[str] = Counter()
    stop = time.monotonic() + seconds
    # Addresses of their own each run: flood control remembers the last run's abusers for a day.
    prefix = f"172.{random.SystemRandom().randint(16, 31)}"

    async def flood() -> None:
        await asyncio.gather(
            *(
                abuser_socket(url, origin, prefix, number, stop, started, tally)
                for number in range(abusers)
                for _ in range(sockets)
            )
        )

    asyncio.run(flood())
    return tally


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--think", type=float, default=10.0, help="customers' mean pause between questions, s")
    parser.add_argument("--abusers", type=int, default=25)
    parser.add_argument("--abuser-sockets", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeline", action="store_true", help="print the round trips' p99 per 10 s of the run")
    parser.add_argument("--step", type=float, default=10.0, help="the timeline's step, s")
    args = parser.parse_args()
    random.seed(args.seed)
    url = args.server.replace("http", "ws", 1) + "/ws/chat/"
    pool = questions(args.seed)
    tally: Counter[str] = Counter()
    timings: list[float] = []
    by_kind: dict[str, list[float]] = {}
    sent_at: list[tuple[float, float]] = []
    # The abuse lasts as long as the customers' questions take, roughly.
    stop = time.monotonic() + args.think * (args.messages + 1)
    started = time.perf_counter()
    customers = [
        customer(
            url,
            args.server,
            number,
            [pool[(number * args.messages + index) % len(pool)] for index in range(args.messages)],
            args.think,
            timings,
            tally,
            by_kind,
            sent_at,
        )
        for number in range(args.chats)
    ]
    # The abusers run in a process of their own: in this one, their busy loops would delay the customers'
    # clocks as much as the server does.
    flood = multiprocessing.get_context("spawn").Pool(1) if args.abusers else None
    abused = (
        flood.apply_async(
            run_abusers, (url, args.server, args.abusers, args.abuser_sockets, stop - time.monotonic(), started)
        )
        if flood
        else None
    )
    await asyncio.gather(*customers)
    elapsed = time.perf_counter() - started
    if flood and abused:
        tally.update(abused.get(timeout=120))
        flood.close()
    timings.sort()
    asked = args.chats * args.messages
    latency = "no answers"
    if timings:
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        latency = f"p50 {statistics.median(timings):.1f} ms, p99 {p99:.1f} ms"
    print(
        f"{args.chats} customers × {args.messages} questions (pause {args.think:g} s), {args.abusers} abusers × "
        f"{args.abuser_sockets} sockets, {elapsed:.0f} s"
    )
    print(f"  customers: {len(timings)} / {asked} answered, {tally['lost']} lost; {latency}")
    for kind, times in sorted(by_kind.items()):
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"  {kind}: {len(times)}, p50 {statistics.median(times):.1f} ms, p99 {p99:.1f} ms")
    if args.timeline and sent_at:
        # When the slow round trips were: p99 and the slowest per --step seconds, by sending time.
        print(f"  timeline (s into the run: round trips, p99 / max ms, per {args.step:g} s):")
        buckets: dict[float, list[float]] = {}
        for sent, took in sent_at:
            buckets.setdefault((sent - started) // args.step * args.step, []).append(took)
        for second, times in sorted(buckets.items()):
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(f"    {second:>6g}: {len(times):>4}, {p99:8.1f} / {times[-1]:8.1f}")
    for key in sorted(tally):
        if key != "lost" and key not in by_kind:
            print(f"  {key}: {tally[key]}")


if __name__ == "__main__":
    asyncio.run(main())

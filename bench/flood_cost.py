"""What a flood costs the server: CPU seconds of the web server processes per handshake, per accepted
message and per refused frame, read from /proc before and after (Linux).

Run against the run command's server (python3 scripts/tandem.py run, with
TANDEM_CLIENT_IP_HEADER=X-Forwarded-For so that each socket counts as an address of its own):

    .venv/bin/python bench/flood_cost.py --sockets 100 --frames 0     # handshakes only
    .venv/bin/python bench/flood_cost.py --sockets 100 --frames 8     # + the socket's allowance, accepted
    .venv/bin/python bench/flood_cost.py --sockets 100 --frames 110   # + 102 refused (rate_limited) each

Each socket comes from an address of its own, opens a conversation, sends --frames small-talk messages at
once and reads an answer (ack or error) for each. The figure is the CPU time both server processes
(found by their command line, `uvicorn`) used from the first handshake until 2 s after the last answer:
background work of the server in that time (the sweep, checkpoints) is in it too. The difference between
two runs is the cost of what differs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import time
import uuid

from websockets.asyncio.client import connect
from websockets.typing import Origin

TICKS = os.sysconf("SC_CLK_TCK")


def server_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "bin/uvicorn"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return total


async def one_socket(url: str, origin: str, address: str, frames: int) -> tuple[int, int]:
    accepted = refused = 0
    async with connect(url, origin=Origin(origin), additional_headers={"X-Forwarded-For": address}) as socket:
        first = json.loads(await socket.recv())
        if first.get("type") != "session":
            raise SystemExit(f"the handshake was refused ({first}): use a server with a fresh address range")
        for _ in range(frames):
            await socket.send(json.dumps({"type": "message", "id": uuid.uuid4().hex, "text": "hello"}))
        while accepted + refused < frames:
            frame = json.loads(await socket.recv())
            if frame["type"] == "ack":
                accepted += 1
            elif frame["type"] == "error":
                refused += 1
    return accepted, refused


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--frames", type=int, default=8, help="messages each socket sends at once")
    args = parser.parse_args()
    pids = server_pids()
    if not pids:
        raise SystemExit("no server process (uvicorn) found: start python3 scripts/tandem.py run first")
    url = args.server.replace("http", "ws", 1) + "/ws/chat/"
    # Addresses of their own each run: flood control remembers earlier ones.
    prefix = f"10.{random.SystemRandom().randint(100, 250)}"
    before = cpu_seconds(pids)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            one_socket(url, args.server, f"{prefix}.{number // 250}.{number % 250}", args.frames)
            for number in range(args.sockets)
        )
    )
    elapsed = time.perf_counter() - started
    await asyncio.sleep(2)
    used = cpu_seconds(pids) - before
    accepted = sum(result[0] for result in results)
    refused = sum(result[1] for result in results)
    print(
        f"{args.sockets} sockets × {args.frames} frames: {accepted} accepted, {refused} refused in {elapsed:.1f} s; "
        f"server CPU {used:.2f} s over {len(pids)} processes"
    )


if __name__ == "__main__":
    asyncio.run(main())

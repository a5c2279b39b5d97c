"""Many customers' escalations at once, answered by an OpenAI-compatible model server that takes a
fixed time per answer: the large model's worker streams many answers at once (TANDEM_LLM_CONCURRENCY,
16 by default for a model server) instead of one after another.

    .venv/bin/python bench/model_server.py --port 8001 --seconds 2 &        # 2 s per answer, streamed
    TANDEM_LLM_BACKEND=openai TANDEM_LLM_BASE_URL=http://127.0.0.1:8001/v1 TANDEM_LLM_MODEL=stand-in \
      TANDEM_CLIENT_IP_HEADER=X-Forwarded-For python3 scripts/tandem.py run &
    .venv/bin/python bench/concurrent_escalations.py --server http://localhost:8000 --chats 32

Each of --chats customers opens a chat and, all at the same moment, asks a different question the small
model cannot answer (so the router sends it to the large model); the script waits for every final
answer and prints, per run, the time from sending to the last token and to the final answer (p50 and
max), and how many questions went elsewhere than the large model. The model server is real (its own
process, HTTP, server-sent events); only its "model" is a stand-in that writes a fixed answer at a fixed
pace. Each chat sends its own X-Forwarded-For address, as customers behind a reverse proxy would (start
the server with TANDEM_CLIENT_IP_HEADER=X-Forwarded-For, or flood control counts them as one address).
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

# Questions no article of the demo knowledge base answers, each different (no answer cache helps).
QUESTIONS = [
    "Can you recommend a good book about sailing across the Atlantic?",
    "What is the capital city of Mongolia and how cold does it get?",
    "How do I fix a dripping tap in my bathroom sink?",
    "How do submarines stay underwater for weeks?",
    "What is the tallest mountain in Africa?",
    "What is the best way to train a puppy to stop biting?",
    "How many moons does Jupiter have these days?",
    "Can you write me a short poem about autumn leaves?",
    "What should I pack for a week of hiking in Scotland?",
    "How do I convert a recipe from cups to grams?",
    "Why is the sky blue during the day but red at sunset?",
    "What are some tips for learning to play the guitar as an adult?",
    "How long should I boil an egg for a runny yolk?",
    "Which houseplants survive in a dark north-facing room?",
    "What is the difference between a virus and a bacterium?",
    "How do I get chewing gum out of a wool jumper?",
    "Can you suggest a name for my new sourdough starter?",
    "What time does the sun rise in Reykjavik in December?",
    "How do bees decide where to build a new hive?",
    "What is a good stretching routine for lower back pain?",
    "Who painted the ceiling of the Sistine Chapel?",
    "How can I make my tomato plants produce more fruit?",
    "What is the rule for the offside position in football?",
    "How do I stop my glasses from fogging up with a mask?",
    "Can you explain what a mortgage offset account is?",
    "Who won the first modern Olympic marathon?",
    "How do I tune a ukulele by ear?",
    "What does a sommelier actually do at a restaurant?",
    "How far can a hot air balloon travel in one flight?",
    "Why do cats purr when they are stroked?",
    "What is the easiest language for an English speaker to learn?",
    "How do I teach my grandmother to make video calls?",
]


def address(number: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"10.77.{number // 256 % 256}.{number % 256}"}


async def customer(url: str, origin: str, number: int, start: asyncio.Event, results: list[dict[str, object]]) -> None:
    result: dict[str, object] = {"question": QUESTIONS[number % len(QUESTIONS)]}
    try:
        async with connect(url, origin=Origin(origin), open_timeout=60, additional_headers=address(number)) as socket:
            await asyncio.wait_for(socket.recv(), 60)  # the session frame
            await start.wait()
            client_id = uuid.uuid4().hex
            sent = time.perf_counter()
            await socket.send(json.dumps({"type": "message", "id": client_id, "text": result["question"]}))
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 120))
                if frame.get("reply_to") != client_id:
                    continue
                if frame["type"] == "token":
                    result.setdefault("first_token", time.perf_counter() - sent)
                elif frame["type"] == "escalated":
                    result["destination"] = frame["destination"]
                    result["reason"] = frame["reason"]
                    if frame["destination"] != "large":
                        break
                elif frame["type"] == "answer":
                    result["answer"] = time.perf_counter() - sent
                    result["tier"] = frame["tier"]
                    if frame["tier"] == "large":
                        break
                    result["destination"] = "small"
                    break
    except Exception as error:  # noqa: BLE001 - a benchmark reports failures rather than stopping
        result["failure"] = f"{type(error).__name__}: {error}"
    results.append(result)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--chats", type=int, default=32)
    args = parser.parse_args()
    url = args.server.replace("http", "ws", 1) + "/ws/chat/"
    start = asyncio.Event()
    results: list[dict[str, object]] = []
    tasks = [asyncio.create_task(customer(url, args.server, number, start, results)) for number in range(args.chats)]
    await asyncio.sleep(3)  # every chat connected and waiting
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    large = [r for r in results if r.get("tier") == "large"]
    failures = [r for r in results if "failure" in r]
    answers = sorted(float(r["answer"]) for r in large)  # type: ignore[arg-type]
    firsts = sorted(float(r["first_token"]) for r in large if "first_token" in r)  # type: ignore[arg-type]
    print(f"{args.chats} customers escalating at once; {len(large)} answered by the large model in {wall:.1f} s")
    if answers:
        print(
            f"  final answer: p50 {statistics.median(answers):.2f} s, max {answers[-1]:.2f} s; "
            f"first token: p50 {statistics.median(firsts):.2f} s, max {firsts[-1]:.2f} s"
        )
    sent_elsewhere = [r for r in results if r.get("destination") not in ("large",) and "failure" not in r]
    print(f"  routed elsewhere than the large model: {len(sent_elsewhere)}; failures: {len(failures)}")
    for r in sent_elsewhere[:5]:
        print(f"    {r.get('destination')} ({r.get('reason')}): {r['question']}")
    for r in failures[:3]:
        print(f"    failure: {r['failure']}")


if __name__ == "__main__":
    asyncio.run(main())

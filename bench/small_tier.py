"""Speed of the small tier as served: routing (language, segments, complaint signals, tokenise + encode +
classify every segment, policy), against the small model's prediction alone.

    .venv/bin/python bench/small_tier.py [--queries 300] [--seconds 10] [--concurrency 64]

Trains on the demo knowledge base into a temporary folder first (about a minute), or serves the model
in --model (a folder holding `current`, e.g. one `evaluate_router --save-model` wrote). Then, for each runtime
(torch, ONNX Runtime) with the float32 and the int8 (dynamically quantised) encoder: the latency of one
query at a time (median, p90, p99), and the throughput with `concurrency` callers sharing the server's
micro-batcher for `seconds`. "predict only" times `predict_many` on the whole message, which was the
small tier's work before routing had signals (plus a regular expression); "route" is what the server runs now
(`chatbot.routing.route_many`), so their difference is the routing signals' cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
os.environ.setdefault("TANDEM_DATA_DIR", tempfile.mkdtemp(prefix="tandem-bench-"))
os.environ["HF_HUB_OFFLINE"] = "1"

import django  # noqa: E402

django.setup()

from chatbot.routing import Incoming, route_many  # noqa: E402
from chatbot.small import encoder as encoder_module  # noqa: E402
from chatbot.small import model as small_model  # noqa: E402
from support.knowledge import loader  # noqa: E402

QUESTIONS = [
    "How do I reset my password?",
    "where is my parcel",
    "How much is shipping to Germany?",
    "I need to change my delivery address",
    "Do you price match?",
    "my order arrived broken",
    "Can I return a sofa I bought 40 days ago that my cat scratched?",
    "what's the weather tomorrow",
    "hi, how do I reset my password?",
    "thanks, that helped!",
    "Where is my order? Also, how do I return a sofa?",
    "Bonjour, je voudrais changer mon adresse de livraison",
]


def latency(model: small_model.SmallModel, queries: int, route: bool) -> list[float]:
    def once(question: str) -> None:
        if route:
            route_many(model, [Incoming(question)])
        else:
            model.predict_many([question])

    for question in QUESTIONS:  # warm-up
        once(question)
    timings = []
    for index in range(queries):
        question = QUESTIONS[index % len(QUESTIONS)]
        started = time.perf_counter()
        once(question)
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def throughput(seconds: float, concurrency: int) -> float:
    from chatbot.small import batching

    async def caller(index: int, deadline: float, done: list[int]) -> None:
        while time.perf_counter() < deadline:
            question = QUESTIONS[(index + done[0]) % len(QUESTIONS)]
            await batching.route(Incoming(question))
            done[0] += 1

    async def run() -> int:
        done = [0]
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(caller(i, deadline, done) for i in range(concurrency)))
        return done[0]

    started = time.perf_counter()
    answered = asyncio.run(run())
    return answered / (time.perf_counter() - started)


def summary(timings: list[float]) -> str:
    p90 = timings[int(len(timings) * 0.9)]
    p99 = timings[int(len(timings) * 0.99)]
    return f"p50 {statistics.median(timings):.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--model", type=Path, help="serve this trained model instead of training one")
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    args = parser.parse_args()
    from django.conf import settings

    directory = args.model or Path(os.environ["TANDEM_DATA_DIR"]) / "small_model"
    if args.model is None:
        small_model.train(loader.examples_from(loader.load_file(loader.DEMO_FILE)), directory)
    settings.TANDEM_SMALL_MODEL_DIR = directory
    print(f"model: {(small_model.current_meta(directory) or {}).get('encoder')}")
    print(f"machine: {os.cpu_count()} cores; torch threads per process: {settings.TANDEM_TORCH_THREADS}")
    for runtime, quantize in [(runtime, quantize) for runtime in args.runtimes for quantize in (False, True)]:
        settings.TANDEM_SMALL_MODEL_RUNTIME = runtime
        settings.TANDEM_SMALL_MODEL_QUANTIZE = quantize
        encoder_module._encoder = None
        small_model._loaded = None
        model = small_model.get_small_model()
        # Interleaved, so both see the same machine.
        predict = latency(model, args.queries // 2, route=False)
        routed = latency(model, args.queries // 2, route=True)
        predict += latency(model, args.queries // 2, route=False)
        routed += latency(model, args.queries // 2, route=True)
        predict.sort()
        routed.sort()
        rate = throughput(args.seconds, args.concurrency)
        label = f"{runtime:5} {'int8   ' if quantize else 'float32'}"
        print(
            f"{label} one query, predict only: {summary(predict)}\n"
            f"{label} one query, route:        {summary(routed)} "
            f"(+{statistics.median(routed) - statistics.median(predict):.2f} ms at p50)\n"
            f"{label} routed, micro-batched, {args.concurrency} callers: {rate:.0f} queries/s"
        )


if __name__ == "__main__":
    main()

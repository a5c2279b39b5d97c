"""Latency of the small tier as served: tokenise + encode + classify + policy, one query at a time.

    .venv/bin/python bench/small_tier.py [--queries 300]

Trains on the demo knowledge base into a temporary folder first (about 20 s), then prints medians.
"""

from __future__ import annotations

import argparse
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

from chatbot.policy import decide  # noqa: E402
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
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    directory = Path(os.environ["TANDEM_DATA_DIR"]) / "small_model"
    small_model.train(loader.examples_from(loader.load_file(loader.DEMO_FILE)), directory)
    from django.conf import settings

    settings.TANDEM_SMALL_MODEL_DIR = directory
    model = small_model.get_small_model()
    for question in QUESTIONS:  # warm-up
        decide(question, model.predict(question))
    timings = []
    for index in range(args.queries):
        question = QUESTIONS[index % len(QUESTIONS)]
        started = time.perf_counter()
        decide(question, model.predict(question))
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(f"small tier, one query at a time, {args.queries} queries, torch threads={settings.TANDEM_TORCH_THREADS}")
    print(
        f"p50 {statistics.median(timings):.2f} ms  p90 {timings[int(len(timings) * 0.9)]:.2f} ms  "
        f"p99 {timings[int(len(timings) * 0.99)]:.2f} ms"
    )


if __name__ == "__main__":
    main()

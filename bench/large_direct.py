"""The large model called directly in one process, for comparison with the same question through the
running stack (`bench/chat_roundtrip.py`: WebSocket → consumer → Celery over Redis → worker → channel
layer → WebSocket).

    .venv/bin/python bench/large_direct.py [--runs 3]

Uses the server's settings and data folder (the knowledge base and small model `tandem.py run` made),
builds the prompt exactly as the Celery task does for a new chat, and streams it from the configured
back end with the same thread count. Prints the time to the first token, tokens per second and total.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from chatbot.llm import get_backend  # noqa: E402
from support.conversations import prompts  # noqa: E402

HARD = "Can I return a sofa I bought 40 days ago that my cat scratched?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    articles = prompts.relevant_articles(HARD, settings.TANDEM_RETRIEVAL_ARTICLES)
    instructions = prompts.INSTRUCTIONS.format(company=settings.TANDEM_COMPANY_NAME, language="")
    system = prompts.system_prompt(instructions, articles)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": HARD}]
    backend = get_backend()
    loaded = time.perf_counter()
    backend.warm_up()
    print(f"{backend.model_name}: loaded in {time.perf_counter() - loaded:.1f} s")
    firsts, rates, totals = [], [], []
    for _ in range(args.runs):
        stamps: list[float] = []

        def stamp(_delta: str, stamps: list[float] = stamps) -> None:
            stamps.append(time.perf_counter())

        started = time.perf_counter()
        generation = backend.generate(
            messages,
            max_tokens=settings.TANDEM_LLM_MAX_TOKENS,
            on_token=stamp,
        )
        done = time.perf_counter()
        if not stamps:
            print("the back end answered without streaming")
            return
        firsts.append(stamps[0] - started)
        rates.append((len(stamps) - 1) / (done - stamps[0]) if done > stamps[0] else float("nan"))
        totals.append(done - started)
        print(
            f"  direct: first token {firsts[-1]:.2f} s, {len(stamps)} tokens streamed "
            f"({generation.output_tokens} generated), {rates[-1]:.1f} tokens/s"
        )
    print(
        f"direct, {args.runs} runs (medians): first token after {statistics.median(firsts):.2f} s, "
        f"{statistics.median(rates):.1f} tokens/s, answer after {statistics.median(totals):.2f} s"
    )


if __name__ == "__main__":
    main()

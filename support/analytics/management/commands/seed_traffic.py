"""Seed realistic synthetic traffic, for trying the console and for bench/console.py."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.analytics import seed


class Command(BaseCommand):
    help = (
        "Write synthetic conversations (customer messages, answers with costs and latencies, ratings, "
        "agents' labels) spread over months, then rebuild the console's rollups. Adds to what is there."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--messages", type=int, default=10_000, help="customer messages to write (about)")
        parser.add_argument("--days", type=int, default=180, help="spread over this many days ending now")
        parser.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same traffic)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["messages"] < 1 or options["days"] < 1:
            raise CommandError("--messages and --days must be at least 1")
        started = time.monotonic()
        written = seed.seed(
            options["messages"], options["days"], random_seed=options["seed"], progress=self.stdout.write
        )
        counts = ", ".join(f"{value:,} {key.replace('_', ' ')}" for key, value in written.items())
        self.stdout.write(f"Wrote {counts} in {time.monotonic() - started:.0f} s.")

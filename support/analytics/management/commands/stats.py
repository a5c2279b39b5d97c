"""Print the stats of a date range as JSON: the same document GET /api/stats/ returns."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.analytics.stats import compute_stats, parse_range


class Command(BaseCommand):
    help = "Print message, tier, escalation and cost statistics for a date range as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (default: 29 days before --to)"
        )
        parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day, inclusive (default: today)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            date_from, date_to = parse_range(options["date_from"], options["date_to"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(compute_stats(date_from, date_to), indent=2))

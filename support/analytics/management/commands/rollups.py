"""Bring the console's rollups up to date, or rebuild them all from the messages."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from support.analytics import rollups


class Command(BaseCommand):
    help = (
        "Rebuild the console's stale rollups (the console and a beat task also do), or with --rebuild all "
        "of them from the messages: after a bulk import or a change of TIME_ZONE."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="rebuild every hour and day from the messages")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        done = rollups.rebuild_all() if options["rebuild"] else rollups.refresh_all()
        self.stdout.write(f"Rebuilt {done} hour{'s' if done != 1 else ''} in {time.monotonic() - started:.1f} s.")

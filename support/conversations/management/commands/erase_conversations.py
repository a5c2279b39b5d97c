"""Erase a customer's conversations everywhere they are stored (a deletion request)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.conversations import actions, broadcast, privacy


class Command(BaseCommand):
    help = (
        "Delete the conversations named (by id, by the customer's token, or by text the customer wrote, such "
        "as an e-mail address) with all their messages, large-model drafts and events; queued large-model "
        "jobs for them then do nothing, and open chat sockets on them are closed. Lists them and asks first "
        "unless --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        privacy.add_selector_arguments(parser)
        parser.add_argument("--yes", action="store_true", help="erase without asking")

    def handle(self, *args: Any, **options: Any) -> None:
        found = privacy.selected(options, self.stderr)
        for conversation_id in found:
            self.stdout.write(f"  {conversation_id}")
        if not options["yes"]:
            answer = input(f"Erase these {len(found)} conversation(s) and everything in them? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("Nothing erased")
        erased = actions.erase_conversations(found)
        # The open sockets are told through Redis from a background thread: let it finish before exiting.
        broadcast.flush()
        self.stdout.write(self.style.SUCCESS(f"Erased {erased} conversation(s)"))

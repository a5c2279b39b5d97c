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
        parser.add_argument("ids", nargs="*", help="conversation ids")
        parser.add_argument("--token", action="append", default=[], help="a customer's conversation token")
        parser.add_argument(
            "--mentioning", action="append", default=[], help="every conversation whose customer wrote this text"
        )
        parser.add_argument("--yes", action="store_true", help="erase without asking")

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["ids"] or options["token"] or options["mentioning"]):
            raise CommandError("Name conversations: ids, --token or --mentioning")
        found, missing = privacy.conversation_ids(options["ids"], options["token"], options["mentioning"])
        for what in missing:
            self.stderr.write(f"Nothing found for {what}")
        if not found:
            raise CommandError("No conversation matched")
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

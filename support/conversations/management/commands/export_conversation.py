"""Export everything stored about a customer's conversations as JSON (a data-access request)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from support.conversations import privacy


class Command(BaseCommand):
    help = (
        "Write every message, draft and event of the conversations named (by id, by the customer's token, "
        "or by text the customer wrote) as JSON, to stdout or --output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        privacy.add_selector_arguments(parser)
        parser.add_argument("--output", type=Path, help="write the JSON here instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        found = privacy.selected(options, self.stderr)
        data = json.dumps([privacy.export(conversation_id) for conversation_id in found], indent=2, ensure_ascii=False)
        if options["output"]:
            options["output"].write_text(data + "\n")
            self.stderr.write(f"Wrote {len(found)} conversation(s) to {options['output']}")
        else:
            self.stdout.write(data)

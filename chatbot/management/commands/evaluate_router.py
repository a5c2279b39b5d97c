from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot.small import evaluation
from chatbot.small.encoder import get_encoder


class Command(BaseCommand):
    help = (
        "Train the small model on TRAIN, run the live routing policy on TEST, and print the figures as JSON "
        "(last line). Test rows labelled `oos` or with no label are out of scope and should be escalated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--train", type=Path, required=True, help="CSV with columns text,label")
        parser.add_argument("--test", type=Path, required=True, help="CSV with columns text,label")
        parser.add_argument("--plot", type=Path, help="draw the risk-coverage curve into this PNG file")
        parser.add_argument(
            "--hold-out-intents",
            type=int,
            default=0,
            metavar="N",
            help="leave N random intents out of training; their test rows become out of scope",
        )
        parser.add_argument("--seed", type=int, default=0, help="which intents --hold-out-intents picks")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            train = evaluation.read_labelled_csv(options["train"])
            test = evaluation.read_labelled_csv(options["test"])
            held: list[str] = []
            if options["hold_out_intents"]:
                train, test, held = evaluation.hold_out_intents(
                    train, test, options["hold_out_intents"], options["seed"]
                )
            report = evaluation.evaluate(train, test, get_encoder())
        except evaluation.DataError as exc:
            raise CommandError(str(exc)) from None
        if held:
            report["held_out_intents"] = held
        if options["plot"]:
            evaluation.plot_risk_coverage(report, options["plot"])
            self.stderr.write(f"Risk-coverage curve written to {options['plot']}")
        self.stdout.write(json.dumps(report))

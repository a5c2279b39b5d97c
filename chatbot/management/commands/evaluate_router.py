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
        parser.add_argument(
            "--epochs",
            type=int,
            help="fine-tune the encoder for this many epochs (0: frozen; default TANDEM_SMALL_MODEL_EPOCHS)",
        )
        parser.add_argument(
            "--save-model",
            type=Path,
            metavar="DIR",
            help="keep the trained model in DIR (an artefact folder, as TANDEM_SMALL_MODEL_DIR holds)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            train = evaluation.read_labelled_csv(options["train"])
            test = evaluation.read_labelled_csv(options["test"])
            held: list[str] = []
            if options["hold_out_intents"]:
                train, test, held = evaluation.hold_out_intents(
                    train, test, options["hold_out_intents"], options["seed"]
                )
            if options["epochs"] is not None and options["epochs"] < 0:
                raise evaluation.DataError("--epochs cannot be negative")
            report = evaluation.evaluate(
                train,
                test,
                get_encoder(),
                options["epochs"],
                progress=lambda line: self.stderr.write(line),
                model_dir=options["save_model"],
            )
        except evaluation.DataError as exc:
            raise CommandError(str(exc)) from None
        if held:
            report["held_out_intents"] = held
        if options["plot"]:
            evaluation.plot_risk_coverage(report, options["plot"])
            self.stderr.write(f"Risk-coverage curve written to {options['plot']}")
        self.stdout.write(json.dumps(report))

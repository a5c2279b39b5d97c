from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot.small import evaluation
from chatbot.small.encoder import get_encoder


class Command(BaseCommand):
    help = (
        "Train the small model on TRAIN (or load one with --model), route the TEST rows with the live routing "
        "code, and print a confusion table of expected against actual destination, the share of each kind of "
        "label handled rightly, and the figures as JSON (last line). Test labels: an intent slug, slugs joined "
        "by + (a multi-part message), oos or empty (escalate), small_talk, route:<destination>, reason:<reason>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--train", type=Path, help="CSV with columns text,label: train on it first")
        source.add_argument(
            "--model",
            type=Path,
            metavar="DIR",
            help="evaluate a saved model (a folder written by --save-model, or one artefact) without training",
        )
        parser.add_argument(
            "--test", type=Path, required=True, help="CSV with columns text,label (and optionally group)"
        )
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
            test = evaluation.read_test_csv(options["test"])
            held: list[str] = []
            if options["model"] is not None:
                if options["hold_out_intents"] or options["save_model"] or options["epochs"] is not None:
                    raise evaluation.DataError("--hold-out-intents, --epochs and --save-model need --train")
                model = evaluation.load_model(options["model"], get_encoder())
                report = {"model": str(model.folder), **evaluation.evaluate_model(model, test)}
            else:
                train = evaluation.read_labelled_csv(options["train"])
                if options["hold_out_intents"]:
                    train, relabelled, held = evaluation.hold_out_intents(
                        train, [(row.text, row.label) for row in test], options["hold_out_intents"], options["seed"]
                    )
                    test = [
                        evaluation.Row(text, label, row.group)
                        for (text, label), row in zip(relabelled, test, strict=True)
                    ]
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
        self.stdout.write(evaluation.confusion_table(report))
        self.stdout.write("")
        self.stdout.write(evaluation.labels_table(report))
        self.stdout.write("")
        self.stdout.write(json.dumps(report))

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot.small import evaluation
from chatbot.small import model as small_model
from chatbot.smalltalk import with_small_talk
from support.knowledge import retraining
from support.knowledge.loader import training_examples


class Command(BaseCommand):
    help = (
        "Train the small model on the knowledge base's phrasings and the agents' confirmed labels (or on a "
        "text,label CSV) and make it current."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", type=Path, help="train on this CSV (columns text,label) instead")
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="do nothing when the current model was trained on exactly this data",
        )
        parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
        parser.add_argument(
            "--epochs",
            type=int,
            help="fine-tune the encoder for this many epochs (0: keep it frozen; default TANDEM_SMALL_MODEL_EPOCHS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["run"] is not None:
            # A run an admin started in the browser: a candidate, compared, not made current.
            run = retraining.run(options["run"], progress=lambda line: self.stdout.write(line))
            self.stdout.write(f"Training run {run.pk}: {run.state} {run.version} {run.error}".strip())
            return
        try:
            if options["csv"]:
                examples = evaluation.read_labelled_csv(options["csv"])
            else:
                # Held-out labels stay out here too: they are what candidates are compared on.
                examples = training_examples() + retraining.labelled_rows()[0]
        except evaluation.DataError as exc:
            raise CommandError(str(exc)) from None
        examples = [(text, label) for text, label in examples if label]
        if not examples:
            raise CommandError("no training examples: load a knowledge base first (python manage.py load_knowledge)")
        meta = small_model.current_meta()
        if (
            options["if_needed"]
            and meta
            and meta.get("data_fingerprint") == small_model.fingerprint(with_small_talk(examples))
        ):
            self.stdout.write(f"The small model {meta['version']} is up to date.")
            return
        if options["epochs"] is not None and options["epochs"] < 0:
            raise CommandError("--epochs cannot be negative")
        try:
            folder = small_model.train(
                examples, epochs=options["epochs"], progress=lambda line: self.stdout.write(line)
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        trained = small_model.current_meta()
        assert trained is not None
        self.stdout.write(
            f"Trained small model {folder.name}: {trained['examples']} examples, {trained['intents']} intents, "
            f"{trained['training_seconds']} s. Held-out: {trained['metrics']}. Policy: {trained['policy']}."
        )

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot.small import model as small_model
from support.knowledge.loader import training_examples


def read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise CommandError(f"{path}: the CSV needs a header with columns text,label")
            rows = [(row["text"].strip(), row["label"].strip()) for row in reader]
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    return [(text, label) for text, label in rows if text and label]


class Command(BaseCommand):
    help = "Train the small model on the knowledge base's phrasings (or a text,label CSV) and make it current."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", type=Path, help="train on this CSV (columns text,label) instead")
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="do nothing when the current model was trained on exactly this data",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        examples = read_csv(options["csv"]) if options["csv"] else training_examples()
        if not examples:
            raise CommandError("no training examples: load a knowledge base first (python manage.py load_knowledge)")
        meta = small_model.current_meta()
        if options["if_needed"] and meta and meta.get("data_fingerprint") == small_model.fingerprint(examples):
            self.stdout.write(f"The small model {meta['version']} is up to date.")
            return
        try:
            folder = small_model.train(examples, progress=lambda line: self.stdout.write(line))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        trained = small_model.current_meta()
        assert trained is not None
        self.stdout.write(
            f"Trained small model {folder.name}: {trained['examples']} examples, {trained['intents']} intents, "
            f"hold-out accuracy {trained['metrics']['holdout_accuracy']}, {trained['training_seconds']} s."
        )

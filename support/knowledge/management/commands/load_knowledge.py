from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.knowledge import loader
from support.knowledge.models import Article


class Command(BaseCommand):
    help = "Load a knowledge-base file (tandem-kb/1 JSON); without a path, the bundled Brightbox demo."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", help="a tandem-kb/1 JSON file (default: the demo knowledge base)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing if articles already exist")
        parser.add_argument("--prune", action="store_true", help="delete articles that are not in the file")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Article.objects.exists():
            self.stdout.write(f"The knowledge base already has {Article.objects.count()} articles.")
            return
        path = Path(options["path"]) if options["path"] else loader.DEMO_FILE
        try:
            articles = loader.load_file(path)
        except loader.KnowledgeFormatError as exc:
            raise CommandError(str(exc)) from None
        result = loader.store(articles, prune=options["prune"])
        self.stdout.write(
            f"Loaded {len(articles)} articles from {path}: {result.created} new, {result.updated} updated, "
            f"{result.pruned} pruned, {result.phrasings} phrasings. "
            "Run `python manage.py train_small_model` to teach the small model."
        )

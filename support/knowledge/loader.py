"""Reading and validating knowledge-base files (format: docs/knowledge-base-format.md)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from support.knowledge.models import SLUG_PATTERN, Article, Phrasing

FORMAT = "tandem-kb/1"
DEMO_FILE = Path(__file__).resolve().parent / "data" / "demo_kb.json"
MIN_PHRASINGS = 5
_SLUG = re.compile(SLUG_PATTERN)


class KnowledgeFormatError(ValueError):
    """The file is not a valid knowledge base; the message names every problem found."""


@dataclass(frozen=True)
class ArticleData:
    slug: str
    title: str
    answer: str
    phrasings: list[str]
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadResult:
    created: int
    updated: int
    pruned: int
    phrasings: int


def parse(raw: str, *, source: str = "file") -> list[ArticleData]:
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KnowledgeFormatError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KnowledgeFormatError(f'{source}: the top level must be an object with "format": "{FORMAT}"')
    articles = document.get("articles")
    if not isinstance(articles, list) or not articles:
        raise KnowledgeFormatError(f'{source}: "articles" must be a non-empty list')

    problems: list[str] = []
    parsed: list[ArticleData] = []
    seen: set[str] = set()
    for index, item in enumerate(articles):
        where = f"articles[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object")
            continue
        slug = item.get("slug")
        if not isinstance(slug, str) or not _SLUG.match(slug):
            problems.append(f"{where}: slug must be lowercase letters, digits and hyphens, got {slug!r}")
            continue
        where = f"article {slug!r}"
        if slug in seen:
            problems.append(f"{where}: slug appears more than once")
        seen.add(slug)
        title, answer = item.get("title"), item.get("answer")
        if not isinstance(title, str) or not title.strip():
            problems.append(f"{where}: title must be a non-empty string")
        if not isinstance(answer, str) or not answer.strip():
            problems.append(f"{where}: answer must be a non-empty string")
        phrasings = item.get("phrasings")
        if not isinstance(phrasings, list) or not all(isinstance(p, str) and p.strip() for p in phrasings):
            problems.append(f"{where}: phrasings must be a list of non-empty strings")
            continue
        unique = list(dict.fromkeys(p.strip() for p in phrasings))
        if len(unique) < MIN_PHRASINGS:
            problems.append(f"{where}: needs at least {MIN_PHRASINGS} distinct phrasings, has {len(unique)}")
        tags = item.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.append(f"{where}: tags must be a list of strings")
            tags = []
        if isinstance(title, str) and isinstance(answer, str):
            parsed.append(ArticleData(slug, title.strip(), answer.strip(), unique, list(tags)))
    if problems:
        raise KnowledgeFormatError(f"{source}: " + "; ".join(problems))
    return parsed


def load_file(path: Path) -> list[ArticleData]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeFormatError(f"cannot read {path}: {exc.strerror}") from None
    return parse(raw, source=str(path))


@transaction.atomic
def store(articles: list[ArticleData], *, prune: bool = False) -> LoadResult:
    """Upsert articles by slug, replacing their phrasings; with prune, delete articles not in the file.
    A retired article in the file is updated and stays retired: retiring is an admin's decision."""
    created = updated = phrasing_count = 0
    for data in articles:
        article, was_created = Article.every.update_or_create(
            slug=data.slug, defaults={"title": data.title, "answer": data.answer, "tags": data.tags}
        )
        created += was_created
        updated += not was_created
        article.phrasings.all().delete()
        Phrasing.objects.bulk_create(Phrasing(article=article, text=text) for text in data.phrasings)
        phrasing_count += len(data.phrasings)
    pruned = 0
    if prune:
        pruned, _ = Article.every.exclude(slug__in=[a.slug for a in articles]).delete()
    return LoadResult(created=created, updated=updated, pruned=pruned, phrasings=phrasing_count)


def training_examples() -> list[tuple[str, str]]:
    """(text, intent) pairs for the small model from the stored knowledge base (its live articles)."""
    pairs = list(Phrasing.objects.filter(article__retired_at__isnull=True).values_list("text", "article__slug"))
    pairs += list(Article.objects.values_list("title", "slug"))
    return pairs


def examples_from(articles: list[ArticleData]) -> list[tuple[str, str]]:
    """The same pairs, from a parsed file: every phrasing, and each article's title."""
    pairs = [(text, a.slug) for a in articles for text in a.phrasings]
    pairs += [(a.title, a.slug) for a in articles]
    return pairs

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from support.knowledge import loader
from support.knowledge.models import Article, Phrasing

pytestmark = pytest.mark.django_db


def article(slug: str, phrasings: int = 5, **fields: object) -> dict:
    return {
        "slug": slug,
        "title": f"About {slug}",
        "answer": f"The answer on {slug}.",
        "phrasings": [f"question {i} on {slug}" for i in range(phrasings)],
        **fields,
    }


def write(tmp_path: Path, articles: list[dict], name: str = "kb.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"format": "tandem-kb/1", "articles": articles}))
    return path


def test_the_demo_knowledge_base_is_valid_and_large_enough() -> None:
    articles = loader.load_file(loader.DEMO_FILE)
    assert len(articles) >= 40
    assert all(len(a.phrasings) >= 5 and a.title and a.answer for a in articles)


def test_loading_a_users_file_upserts_by_slug_and_replaces_phrasings(tmp_path: Path) -> None:
    call_command("load_knowledge", str(write(tmp_path, [article("a"), article("b")])))
    call_command("load_knowledge", str(write(tmp_path, [article("a", 6, title="New title")])))
    assert Article.objects.get(slug="a").title == "New title"
    assert Phrasing.objects.filter(article__slug="a").count() == 6
    assert Article.objects.filter(slug="b").exists()
    call_command("load_knowledge", str(write(tmp_path, [article("a")])), "--prune")
    assert list(Article.objects.values_list("slug", flat=True)) == ["a"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not valid JSON"),
        (json.dumps({"articles": []}), "format"),
        (json.dumps({"format": "tandem-kb/1", "articles": [article("Bad Slug")]}), "slug"),
        (json.dumps({"format": "tandem-kb/1", "articles": [article("a", phrasings=4)]}), "at least 5"),
        (json.dumps({"format": "tandem-kb/1", "articles": [article("a"), article("a")]}), "more than once"),
        (json.dumps({"format": "tandem-kb/1", "articles": [article("a", answer="")]}), "answer"),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_error_and_nothing_is_loaded(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "kb.json"
    path.write_text(document)
    with pytest.raises(CommandError, match=message):
        call_command("load_knowledge", str(path))
    assert not Article.objects.exists()


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        call_command("load_knowledge", str(tmp_path / "nope.json"))

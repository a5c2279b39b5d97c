"""The knowledge base in the admin site: an admin adds, edits, retires and restores articles and their
phrasings in the browser; agents may not; the pages say when the small model is out of date."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from support.conversations.models import Conversation, Message, Role
from support.knowledge import answers, freshness, retraining
from support.knowledge.loader import training_examples
from support.knowledge.models import Article, Phrasing
from support.review.models import Label, LabelKind
from support.review.roles import make_agent

pytestmark = pytest.mark.django_db

PHRASINGS = [
    "can I pay with a gift card",
    "do you take gift cards",
    "gift card payment",
    "pay using a voucher card",
    "is a gift card accepted at checkout",
]


@pytest.fixture
def group_admin(db: None) -> User:
    """An admin by the Admins group: no superuser, no model permissions."""
    return make_agent(User.objects.create_user("kb-admin", password="pw"), admin=True)


@pytest.fixture
def browser(group_admin: User, django_capture_on_commit_callbacks: Any) -> Client:
    """The admin's browser; what a request does once its transaction commits (clearing the cached
    answers) is done when the response comes, as on a real server."""

    class Browser(Client):
        def request(self, **request: Any) -> Any:
            with django_capture_on_commit_callbacks(execute=True):
                return super().request(**request)

    client = Browser()
    client.force_login(group_admin)
    return client


def article_form(slug: str, title: str, answer: str, phrasings: list[str], **extra: str) -> dict[str, str]:
    data = {
        "slug": slug,
        "title": title,
        "answer": answer,
        "tags": "[]",
        "phrasings-TOTAL_FORMS": str(len(phrasings)),
        "phrasings-INITIAL_FORMS": "0",
        "phrasings-MIN_NUM_FORMS": "0",
        "phrasings-MAX_NUM_FORMS": "1000",
        **{f"phrasings-{number}-text": text for number, text in enumerate(phrasings)},
    }
    data.update(extra)
    return data


def change_form(article: Article, **changes: str) -> dict[str, str]:
    """The change page's form as the browser sends it back: the stored phrasings, with `changes`."""
    phrasings = list(article.phrasings.all())
    data = {
        "title": article.title,
        "answer": article.answer,
        "tags": "[]",
        "phrasings-TOTAL_FORMS": str(len(phrasings)),
        "phrasings-INITIAL_FORMS": str(len(phrasings)),
        "phrasings-MIN_NUM_FORMS": "0",
        "phrasings-MAX_NUM_FORMS": "1000",
    }
    for number, phrasing in enumerate(phrasings):
        data[f"phrasings-{number}-id"] = str(phrasing.pk)
        data[f"phrasings-{number}-article"] = str(article.pk)
        data[f"phrasings-{number}-text"] = phrasing.text
    data.update(changes)
    return data


def add_gift_cards(browser: Client) -> Article:
    response = browser.post(
        reverse("admin:knowledge_article_add"),
        article_form("gift-cards", "Can I pay with a gift card?", "Yes: enter its code at checkout.", PHRASINGS),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return Article.every.get(slug="gift-cards")


def test_an_admin_in_the_admins_group_adds_an_article_with_phrasings_in_the_admin_site(browser: Client) -> None:
    assert browser.get(reverse("admin:knowledge_article_add")).status_code == 200

    article = add_gift_cards(browser)

    assert sorted(article.phrasings.values_list("text", flat=True)) == sorted(PHRASINGS)
    assert ("do you take gift cards", "gift-cards") in training_examples()
    assert ("Can I pay with a gift card?", "gift-cards") in training_examples()
    listed = browser.get(reverse("admin:knowledge_article_changelist"))
    assert "Can I pay with a gift card?" in listed.content.decode()


def test_the_admin_finds_an_article_by_one_of_its_phrasings(browser: Client) -> None:
    add_gift_cards(browser)
    Article.objects.create(slug="opening-hours", title="When are you open?", answer="9 to 5.")

    found = browser.get(reverse("admin:knowledge_article_changelist"), {"q": "voucher"}).content.decode()

    assert "Can I pay with a gift card?" in found
    assert "When are you open?" not in found


def test_editing_the_answer_changes_the_answer_sent_at_once(browser: Client) -> None:
    article = add_gift_cards(browser)
    assert answers.answer_for("gift-cards") == "Yes: enter its code at checkout."

    response = browser.post(
        reverse("admin:knowledge_article_change", args=[article.pk]),
        change_form(article, answer="Yes, and vouchers too: enter the code at checkout."),
    )

    assert response.status_code == 302
    assert answers.answer_for("gift-cards") == "Yes, and vouchers too: enter the code at checkout."


def test_a_retired_article_is_neither_answered_nor_trained_on_and_can_be_restored(browser: Client) -> None:
    article = add_gift_cards(browser)
    assert answers.answer_for("gift-cards") is not None
    conversation = Conversation.objects.create()
    messages = [
        Message.objects.create(conversation=conversation, role=Role.CUSTOMER, text=f"gift card {n}?") for n in range(2)
    ]
    trained = next(message for message in messages if message.pk % retraining.HELD_OUT_EVERY)
    Label.objects.create(message=trained, kind=LabelKind.ARTICLE, article="gift-cards", given_at=timezone.now())
    assert (trained.text, "gift-cards") in freshness.examples_now()

    response = browser.post(
        reverse("admin:knowledge_article_changelist"), {"action": "retire", "_selected_action": [str(article.pk)]}
    )

    assert response.status_code == 302
    assert answers.answer_for("gift-cards") is None
    assert not [pair for pair in freshness.examples_now() if pair[1] == "gift-cards"]
    assert not Article.objects.filter(slug="gift-cards").exists()
    retired = browser.get(reverse("admin:knowledge_article_changelist"), {"status": "retired"}).content.decode()
    assert "Can I pay with a gift card?" in retired

    browser.post(
        reverse("admin:knowledge_article_changelist"), {"action": "restore", "_selected_action": [str(article.pk)]}
    )

    assert answers.answer_for("gift-cards") == "Yes: enter its code at checkout."
    assert ("do you take gift cards", "gift-cards") in training_examples()


def test_the_change_page_retires_an_article_with_its_checkbox(browser: Client) -> None:
    article = add_gift_cards(browser)
    answers.answer_for("gift-cards")

    browser.post(reverse("admin:knowledge_article_change", args=[article.pk]), change_form(article, retired="on"))

    article.refresh_from_db()
    assert article.retired_at is not None
    assert answers.answer_for("gift-cards") is None


def test_a_slug_is_fixed_once_the_article_exists(browser: Client) -> None:
    article = add_gift_cards(browser)
    page = browser.get(reverse("admin:knowledge_article_change", args=[article.pk])).content.decode()
    assert 'name="slug"' not in page

    browser.post(reverse("admin:knowledge_article_change", args=[article.pk]), change_form(article, slug="vouchers"))

    assert Article.every.filter(slug="gift-cards").exists()
    assert not Article.every.filter(slug="vouchers").exists()


@pytest.mark.parametrize("slug", ["Gift Cards", "gift_cards", "-gift", "GIFT"])
def test_a_slug_must_be_lowercase_letters_digits_and_hyphens(browser: Client, slug: str) -> None:
    response = browser.post(
        reverse("admin:knowledge_article_add"), article_form(slug, "Gift cards?", "Yes.", PHRASINGS)
    )

    assert response.status_code == 200
    assert not Article.every.exists()


def test_a_slug_of_a_retired_article_is_taken(browser: Client) -> None:
    add_gift_cards(browser)
    Article.every.filter(slug="gift-cards").update(retired_at=timezone.now())

    response = browser.post(
        reverse("admin:knowledge_article_add"), article_form("gift-cards", "Gift cards?", "Yes.", PHRASINGS)
    )

    assert response.status_code == 200
    assert "already exists" in response.content.decode()


@pytest.mark.parametrize("persona", ["agent", "visitor"])
def test_agents_and_visitors_may_not_open_the_knowledge_base_in_the_admin_site(
    persona: str, agent: User, visitor: User
) -> None:
    client = Client()
    client.force_login({"agent": agent, "visitor": visitor}[persona])

    for url in (reverse("admin:knowledge_article_changelist"), reverse("admin:knowledge_article_add")):
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]
    assert (
        client.post(reverse("admin:knowledge_article_add"), article_form("x", "X?", "X.", PHRASINGS)).status_code == 302
    )
    assert not Article.every.exists()


@pytest.fixture
def model_dir(trained_model_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the session's model trained on the demo knowledge base: a test trains another beside it."""
    directory = tmp_path / "models"
    shutil.copytree(trained_model_dir, directory)
    with override_settings(TANDEM_SMALL_MODEL_DIR=directory):
        yield directory


def banner_shown(client: Client) -> Callable[[], dict[str, bool]]:
    def shown() -> dict[str, bool]:
        pages = {"model page": reverse("small-model"), "article list": reverse("admin:knowledge_article_changelist")}
        return {name: 'id="model-out-of-date"' in client.get(url).content.decode() for name, url in pages.items()}

    return shown


def test_the_pages_say_the_model_is_out_of_date_after_an_edit_until_it_is_trained_again(
    knowledge_base: None, model_dir: Path, browser: Client
) -> None:
    shown = banner_shown(browser)
    assert freshness.model_out_of_date() is None
    assert shown() == {"model page": False, "article list": False}
    article = Article.objects.get(slug="reset-password")

    browser.post(
        reverse("admin:knowledge_article_change", args=[article.pk]),
        change_form(article, **{"phrasings-0-text": "my password stopped working, what now"}),
    )

    assert freshness.model_out_of_date() == freshness.OUT_OF_DATE
    assert shown() == {"model page": True, "article list": True}

    call_command("train_small_model", stdout=None)

    assert freshness.model_out_of_date() is None
    assert shown() == {"model page": False, "article list": False}


def test_a_new_answer_alone_leaves_the_model_up_to_date(knowledge_base: None, model_dir: Path) -> None:
    Article.objects.filter(slug="reset-password").update(answer="Use the link on the sign-in page.")

    assert freshness.model_out_of_date() is None


def test_retiring_an_article_puts_the_model_out_of_date(knowledge_base: None, model_dir: Path) -> None:
    Article.objects.filter(slug="reset-password").update(retired_at=timezone.now())

    assert freshness.model_out_of_date() == freshness.OUT_OF_DATE


def test_with_no_model_trained_the_pages_ask_for_one(knowledge_base: None, tmp_path: Path) -> None:
    with override_settings(TANDEM_SMALL_MODEL_DIR=tmp_path / "none"):
        assert freshness.model_out_of_date() == freshness.NO_MODEL
    Phrasing.objects.all().delete()
    Article.objects.all().delete()
    with override_settings(TANDEM_SMALL_MODEL_DIR=tmp_path / "none"):
        assert freshness.model_out_of_date() is None


def test_the_console_s_cached_answer_sees_a_change_here_at_once_and_one_elsewhere_within_seconds(
    knowledge_base: None, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    freshness.forget()
    assert freshness.model_out_of_date_cached() is None
    article = Article.objects.get(slug="reset-password")
    Phrasing.objects.create(article=article, text="my password stopped working, what now")  # saved here
    assert freshness.model_out_of_date_cached() == freshness.OUT_OF_DATE
    Phrasing.objects.filter(text="my password stopped working, what now").delete()
    assert freshness.model_out_of_date_cached() is None
    # Another process's change sends no signal here: it is seen once the last check is old enough.
    Article.objects.filter(slug="reset-password").update(retired_at=timezone.now())
    assert freshness.model_out_of_date_cached() is None
    monkeypatch.setattr(freshness, "CHECK_EVERY_SECONDS", 0.0)
    assert freshness.model_out_of_date_cached() == freshness.OUT_OF_DATE

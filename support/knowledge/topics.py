"""New topics: messages agents labelled "no article answers it", grouped by what they ask, and turned
into an article by an admin (the messages become its first phrasings and are labelled with it, so the
next training learns it)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from chatbot.small import topics
from chatbot.small.model import ModelNotTrained, get_small_model
from support.analytics import rollups
from support.conversations.actions import ConversationError
from support.knowledge.models import Article, Phrasing
from support.permissions import is_admin
from support.review.models import Label, LabelKind

# The newest "new topic" labels grouped (older ones wait until these are dealt with).
GROUPED = 500


@dataclass
class Topic:
    message_ids: list[int]
    texts: list[str]


def new_topics() -> list[Topic]:
    """The "new topic" labels' messages, grouped by topic, largest group first."""
    rows = list(
        Label.objects.filter(kind=LabelKind.NEW_TOPIC)
        .order_by("-given_at")
        .values_list("message_id", "message__text")[:GROUPED]
    )
    if not rows:
        return []
    try:
        vectors = get_small_model().encoder.embed([text for _, text in rows])
    except ModelNotTrained:
        return [Topic([message_id], [text]) for message_id, text in rows]
    return [Topic([rows[i][0] for i in members], [rows[i][1] for i in members]) for members in topics.group(vectors)]


def article_from_topic(admin: User, message_ids: list[int], title: str, answer: str, slug: str = "") -> Article:
    """A new article answering these "new topic" messages: they become its phrasings and are labelled
    with it. The small model learns it at the next training."""
    if not is_admin(admin):
        raise ConversationError("not_an_admin", "Only an admin adds articles.")
    title, answer = " ".join(title.split()), answer.strip()
    slug = slugify(slug or title)[:100]
    if not title or not answer or not slug:
        raise ConversationError("incomplete_article", "An article needs a title and an answer.")
    if len(title) > 300:
        raise ConversationError("title_too_long", "The title is longer than 300 characters.")
    labels = list(Label.objects.filter(message_id__in=message_ids, kind=LabelKind.NEW_TOPIC).select_related("message"))
    if not labels:
        raise ConversationError("no_messages", "None of those messages is labelled as a new topic.")
    try:
        with transaction.atomic():
            article = Article.objects.create(slug=slug, title=title, answer=answer)
            Phrasing.objects.bulk_create(Phrasing(article=article, text=label.message.text[:500]) for label in labels)
            Label.objects.filter(pk__in=[label.pk for label in labels]).update(
                kind=LabelKind.ARTICLE, article=slug, given_by=admin, given_at=timezone.now(), proposed=""
            )
            # A bulk update sends no signal: the console's rollups of those messages are stale now.
            rollups.mark_messages(label.message_id for label in labels)
    except IntegrityError:
        raise ConversationError("slug_taken", f"An article {slug!r} exists already: choose another name.") from None
    return article

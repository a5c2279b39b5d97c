"""Labels from work already done: which of a conversation's messages the desk asks about, and the
answers it pre-selects. (Writing a label: support/review/actions.py.)"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from chatbot.small.model import ModelNotTrained
from support.conversations import prompts
from support.conversations.models import Message, ReviewState, Role, Tier
from support.knowledge.models import Article
from support.review.models import Label

logger = logging.getLogger(__name__)

# Articles offered per question (the agent can pick any other from a list).
PROPOSALS = 3


@dataclass
class Question:
    """One customer message people answered, and what to ask about it."""

    message: Message
    # (slug, title, why proposed: "draft", "guess", or "" for the label given), best first; the first is
    # pre-selected.
    proposals: list[tuple[str, str, str]] = field(default_factory=list)
    label: Label | None = None


def _answered_by_people(transcript: list[Message]) -> list[Message]:
    """Customer messages routed away from the small model and then answered by an agent (a reply, or a
    draft the agent sent or edited)."""
    answered: set[int] = set()
    for message in transcript:
        if message.reply_to_id is None:
            continue
        if message.tier == Tier.AGENT or (
            message.tier == Tier.LARGE and message.review_state in (ReviewState.APPROVED, ReviewState.EDITED)
        ):
            answered.add(message.reply_to_id)
    return [
        message
        for message in transcript
        if message.role == Role.CUSTOMER and message.pk in answered and message.destination in ("large", "people")
    ]


def questions(transcript: list[Message]) -> list[Question]:
    """What the desk asks about a conversation's messages, with its proposals (labelled ones too, to
    show and change their label)."""
    asked = _answered_by_people(transcript)
    labels = {label.message_id: label for label in Label.objects.filter(message__in=asked).select_related("given_by")}
    titles = dict(Article.objects.values_list("slug", "title"))
    grounded = {
        message.reply_to_id: [source["slug"] for source in message.sources]
        for message in transcript
        if message.tier == Tier.LARGE and message.review_state in (ReviewState.APPROVED, ReviewState.EDITED)
    }
    found = []
    for message in asked:
        label = labels.get(message.pk)
        candidates: list[tuple[str, str]] = [(slug, "draft") for slug in grounded.get(message.pk, [])[:1]]
        if label is not None and label.article:
            # Labelled already: the label first, and no encoding on every refresh of the page.
            candidates.insert(0, (label.article, ""))
        if message.intent:
            candidates.append((message.intent, "guess"))
        if label is None:
            with contextlib.suppress(ModelNotTrained):  # no model yet: only what the message recorded
                candidates += [(a.slug, "guess") for a in prompts.relevant_articles(message.text, PROPOSALS)]
        proposals: list[tuple[str, str, str]] = []
        for slug, why in candidates:
            if slug in titles and slug not in {p[0] for p in proposals}:
                proposals.append((slug, titles[slug], why))
        found.append(Question(message, proposals[:PROPOSALS], label))
    return found

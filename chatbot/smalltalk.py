"""Tandem's built-in intents: small talk, for the messages every support chat gets (greetings, thanks,
goodbyes, "are you a bot?", "what can you do?", "ok", "never mind" …), and `talk-to-human`, the ways
people ask for a person.

They are trained into every small model beside the knowledge base's intents (`with_small_talk`), so
the classifier tells "hello" from a question instead of calling it out of scope, and knows a request
for a person even when the knowledge base has no article for it. A knowledge-base article with one of
these slugs replaces the built-in one (its phrasings and answer are used), and
`TANDEM_SMALL_TALK_DISABLED` (slugs, or `all` for every small-talk intent) leaves some or all out of
training. Small talk is answered by the small tier and never escalated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings

DATA_FILE = Path(__file__).resolve().parent / "data" / "built_in_intents.json"
# The built-in request for a person (settings.TANDEM_HUMAN_INTENTS lists it by default).
TALK_TO_HUMAN = "talk-to-human"
PREFIX = "smalltalk-"


@dataclass(frozen=True)
class SmallTalk:
    slug: str
    title: str
    answer: str
    phrasings: tuple[str, ...]


@cache
def builtin() -> dict[str, SmallTalk]:
    document = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return {
        item["slug"]: SmallTalk(item["slug"], item["title"], item["answer"], tuple(item["phrasings"]))
        for item in document["articles"]
    }


def is_small_talk(intent: str | None) -> bool:
    """Whether an intent is small talk: a built-in one, or a knowledge-base article in its namespace."""
    return bool(intent) and str(intent).startswith(PREFIX)


def enabled() -> dict[str, SmallTalk]:
    disabled = {slug.strip() for slug in settings.TANDEM_SMALL_TALK_DISABLED}
    every = "all" in disabled
    return {
        slug: intent
        for slug, intent in builtin().items()
        if slug not in disabled and not (every and is_small_talk(slug))
    }


def with_small_talk(examples: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Training examples plus the enabled built-in small talk, except intents the examples define."""
    defined = {label for _, label in examples}
    extra = [
        (phrasing, slug)
        for slug, intent in enabled().items()
        if slug not in defined
        for phrasing in (*intent.phrasings, intent.title)
    ]
    return [*examples, *extra]


def builtin_answer(slug: str) -> str | None:
    intent = builtin().get(slug)
    return intent.answer if intent else None

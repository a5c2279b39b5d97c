"""The articles' answers as the small tier sends them, cached in each process.

Every routine answer needs its article's text; reading it from the database was one of the statements
on the chat's hot path. An edit reaches every server process within `CACHE_SECONDS` (and the process
that saved it at once: saving or deleting an article, in the admin site too, clears its cache).
"""

from __future__ import annotations

import threading
import time

from django.db import transaction

from chatbot.smalltalk import builtin_answer
from support.knowledge.models import Article

CACHE_SECONDS = 5.0
_lock = threading.Lock()
# slug -> (when it was read, the answer or None when no such article exists)
_cache: dict[str, tuple[float, str | None]] = {}


def answer_for(slug: str) -> str | None:
    """The answer of the live article with this slug (or of the built-in small talk), or None if there is
    none: a retired article is not answered (`Article.objects` holds the live ones)."""
    now = time.monotonic()
    cached = _cache.get(slug)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    answer = Article.objects.filter(slug=slug).values_list("answer", flat=True).first()
    if answer is None:
        # Built-in small talk, unless the knowledge base has an article of that slug.
        answer = builtin_answer(slug)
    with _lock:
        _cache[slug] = (now, answer)
    return answer


def forget(*_: object, **__: object) -> None:
    """Drop every cached answer once the edit is committed (cleared earlier, a message in between could
    read and cache the old text again)."""
    transaction.on_commit(_clear)


def _clear() -> None:
    with _lock:
        _cache.clear()

"""Full-text search over messages, on whichever database Tandem runs.

PostgreSQL: to_tsvector('english', text) against a tsquery, served by the GIN expression index that
migration 0006 creates. SQLite: the FTS5 table conversations_message_fts (porter stemmer, unicode61,
diacritics removed) that the same migration creates and keeps in step with triggers. Both stem English,
so "refunds" finds "refund". A word is searched as a phrase of the tokens it holds ("order-1234" finds
"order 1234"); with prefix=True its last token may also be the start of a longer one ("pass" finds
"password"). Nothing a person types is read as query syntax: quotes, operators and the like are only
text to the tokenizer.

If a migration on SQLite ever remakes conversations_message (Django does so to alter some columns), the
table's triggers go with it: that migration must create them again (see 0006). A test checks they exist.
"""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from support.conversations.models import Message

FTS_TABLE = "conversations_message_fts"
CONFIG = "english"
# A word worth searching for holds a letter or a digit; one of punctuation alone is ignored.
_SEARCHABLE = re.compile(r"[^\W_]")
# Control characters (NUL above all: PostgreSQL refuses it in text) are taken as spaces.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def words(text: str) -> list[str]:
    """The words of a search worth searching for, in order."""
    return [word for word in _CONTROL.sub(" ", text).split() if _SEARCHABLE.search(word)]


def messages_matching(word: str, *, prefix: bool = False) -> QuerySet[Message] | None:
    """The messages that contain the word (in any of its forms), or None when the word has nothing
    to search for (punctuation only; on PostgreSQL, also a word made only of stop words such as
    "the"): a caller then leaves it out rather than match nothing."""
    word = " ".join(_CONTROL.sub(" ", word).split())
    if not _SEARCHABLE.search(word):
        return None
    connection = connections[router.db_for_read(Message)]
    if connection.vendor == "postgresql":
        return _postgresql(word, prefix, connection)
    if connection.vendor == "sqlite":
        return _sqlite(word, prefix)
    # Another database: no full-text index, so a plain substring match.
    return Message.objects.filter(text__icontains=word)


def _sqlite(word: str, prefix: bool) -> QuerySet[Message]:
    # An FTS5 string: the tokenizer splits it into a phrase, and nothing in it is syntax.
    query = '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")
    rowids = RawSQL(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s", (query,))
    return Message.objects.filter(pk__in=rowids)


def _postgresql(word: str, prefix: bool, connection: BaseDatabaseWrapper) -> QuerySet[Message] | None:
    if prefix:
        # A quoted lexeme in to_tsquery: the parser splits it into a phrase, and :* lets each token
        # be the start of a longer one. Inside the quotes only ' and \ mean anything; both escaped.
        quoted = "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
        query = SearchQuery(quoted + ":*", search_type="raw", config=CONFIG)
        function = "to_tsquery"
        text = quoted + ":*"
    else:
        query = SearchQuery(word, search_type="phrase", config=CONFIG)
        function = "phraseto_tsquery"
        text = word
    # Stop words ("the", "a") and over-long words leave an empty query, which would match nothing.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT numnode({function}(%s::regconfig, %s))", [CONFIG, text])
        (nodes,) = cursor.fetchone()
    if not nodes:
        return None
    # The same expression as the index (SearchVector wraps the column in COALESCE(…, '')).
    return Message.objects.alias(document=SearchVector("text", config=CONFIG)).filter(document=query)

"""Whether the small model serving was trained on the knowledge base as it is now.

The serving model records a fingerprint of the examples it was trained on (with small talk); the
examples a training would use now are the live articles' phrasings and titles plus the agents' labels
that train (held-out labels never do). An edited phrasing, a new or retired article, a changed slug or
a new label each change the fingerprint, so a page can say that training again would teach the model
something. A changed answer does not: answers are read from the database at once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from chatbot.small import model as small_model
from chatbot.smalltalk import with_small_talk
from support.knowledge import retraining
from support.knowledge.loader import training_examples

logger = logging.getLogger(__name__)

OUT_OF_DATE = "The knowledge base or the agents' labels changed since the serving model was trained — train a new one."
NO_MODEL = "No small model serves yet — train one."


def examples_now() -> list[tuple[str, str]]:
    """The examples a training would use now, as `train_small_model` and the retraining gather them."""
    examples = training_examples() + retraining.labelled_rows()[0]
    return [(text, label) for text, label in examples if label]


def model_out_of_date(directory: Path | None = None) -> str | None:
    """A sentence for a banner when the serving small model was not trained on today's knowledge base
    and labels; None when it was (or there is nothing to train on)."""
    try:
        meta = small_model.current_meta(directory)
    except (OSError, ValueError):
        logger.exception("Cannot read the serving small model's metadata")
        return None
    examples = examples_now()
    if not examples:
        return None
    if meta is None:
        return NO_MODEL
    if meta.get("data_fingerprint") != small_model.fingerprint(with_small_talk(examples)):
        return OUT_OF_DATE
    return None


def _signature(directory: Path | None) -> tuple[object, ...]:
    """Changes whenever what the answer depends on may have: the serving version, the articles, their
    phrasings, the labels (a few aggregate queries, where reading every label costs seconds)."""
    from django.db.models import Count, Max

    from support.knowledge.models import Article, Phrasing
    from support.review.models import Label

    return (
        small_model.current_version(directory),
        tuple(Article.every.aggregate(n=Count("pk"), at=Max("updated_at"), retired=Max("retired_at")).values()),
        tuple(Phrasing.objects.aggregate(n=Count("pk"), last=Max("pk")).values()),
        tuple(Label.objects.aggregate(n=Count("pk"), at=Max("given_at")).values()),
    )


# Other server processes see a change within this many seconds; this one at once (forget()).
CHECK_EVERY_SECONDS = 5.0
# (when checked, on time.monotonic(); the directory; the signature; the answer)
_last: tuple[float, Path | None, tuple[object, ...], str | None] | None = None


def model_out_of_date_cached(directory: Path | None = None) -> str | None:
    """`model_out_of_date`, computed again only when the data it depends on has changed (for pages read
    often, like the console). Whether it has is asked at most every CHECK_EVERY_SECONDS (counting the
    labels costs milliseconds at a busy site); a change saved in this process is seen at once."""
    global _last
    now = time.monotonic()
    if _last is not None and _last[1] == directory and now - _last[0] < CHECK_EVERY_SECONDS:
        return _last[3]
    signature = _signature(directory)
    if _last is None or _last[1] != directory or _last[2] != signature:
        _last = (now, directory, signature, model_out_of_date(directory))
    else:
        _last = (now, directory, signature, _last[3])
    return _last[3]


def forget(**_: object) -> None:
    """An article, phrasing or label was saved or deleted in this process: ask again next time."""
    global _last
    _last = None

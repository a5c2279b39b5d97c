"""Where a customer's message goes, and why: the three destinations and the escalation reasons.

Every reason maps to one destination by `DEFAULT_DESTINATIONS`; `TANDEM_ROUTES` overrides single
entries (`reason=destination,...`). Nothing heavy is imported here: the settings module reads it.
"""

from __future__ import annotations

from enum import StrEnum


class Destination(StrEnum):
    # The small tier answers at once.
    SMALL = "small"
    # The large model answers, grounded on the knowledge base.
    LARGE = "large"
    # An agent answers; the large model may only write a draft that agents see.
    PEOPLE = "people"


class Reason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    OUT_OF_SCOPE = "out_of_scope"
    MULTI_PART = "multi_part"
    LANGUAGE = "language"
    LONG = "long"
    HUMAN_REQUESTED = "human_requested"
    SENSITIVE = "sensitive"
    COMPLAINT = "complaint"
    # The small model could not run at all (not trained yet).
    MODEL_UNAVAILABLE = "model_unavailable"
    # The large model gave up for good after its retries.
    LARGE_MODEL_FAILED = "large_model_failed"
    # The conversation has used its share of large-model answers lately, or too many conversations wait
    # for the large model already (flood control).
    ESCALATION_LIMIT = "escalation_limit"
    # The large model wrote nothing within its deadline (TANDEM_LLM_FIRST_TOKEN_SECONDS).
    LARGE_MODEL_SLOW = "large_model_slow"
    # The large model's back end kept failing, so it is not called for a while (the circuit breaker).
    LARGE_MODEL_UNAVAILABLE = "large_model_unavailable"


DEFAULT_DESTINATIONS: dict[Reason, Destination] = {
    Reason.OUT_OF_SCOPE: Destination.LARGE,
    Reason.LOW_CONFIDENCE: Destination.LARGE,
    Reason.MULTI_PART: Destination.LARGE,
    Reason.LANGUAGE: Destination.LARGE,
    Reason.LONG: Destination.LARGE,
    Reason.MODEL_UNAVAILABLE: Destination.LARGE,
    Reason.HUMAN_REQUESTED: Destination.PEOPLE,
    Reason.SENSITIVE: Destination.PEOPLE,
    Reason.COMPLAINT: Destination.PEOPLE,
    # Nothing else can answer it: the large model already failed.
    Reason.LARGE_MODEL_FAILED: Destination.PEOPLE,
    # The point is not to call the large model.
    Reason.ESCALATION_LIMIT: Destination.PEOPLE,
    Reason.LARGE_MODEL_SLOW: Destination.PEOPLE,
    Reason.LARGE_MODEL_UNAVAILABLE: Destination.PEOPLE,
}

# Reasons whose destination settings may not change: a failed, slow or unavailable large model cannot
# be asked again, and one over its budget must not be.
FIXED = frozenset(
    {Reason.LARGE_MODEL_FAILED, Reason.ESCALATION_LIMIT, Reason.LARGE_MODEL_SLOW, Reason.LARGE_MODEL_UNAVAILABLE}
)


def parse_routes(raw: str) -> dict[Reason, Destination]:
    """The routing table with the overrides in `raw` ("reason=destination,reason=destination")."""
    table = dict(DEFAULT_DESTINATIONS)
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        reason_name, separator, destination_name = (piece.strip() for piece in item.partition("="))
        if not separator:
            raise ValueError(f"{item!r} is not reason=destination")
        try:
            reason = Reason(reason_name)
        except ValueError:
            raise ValueError(f"unknown reason {reason_name!r} (known: {', '.join(Reason)})") from None
        try:
            destination = Destination(destination_name)
        except ValueError:
            known = ", ".join(d for d in Destination if d != Destination.SMALL)
            raise ValueError(f"unknown destination {destination_name!r} for {reason_name} (one of: {known})") from None
        if destination == Destination.SMALL:
            raise ValueError(f"{reason_name} cannot go to small: an escalation goes to large or people")
        if reason in FIXED and destination != table[reason]:
            raise ValueError(f"{reason_name} always goes to {table[reason]}")
        table[reason] = destination
    return table

"""What the customer is told when a message is escalated, in words that fit where it went."""

from __future__ import annotations

from django.conf import settings

from chatbot.routes import Destination, Reason

# By reason first, then by destination: a reason routed elsewhere by TANDEM_ROUTES falls back to its
# destination's wording, so the customer is never told "a colleague will reply" when the large model will.
_BY_REASON: dict[tuple[Reason, Destination], str] = {
    (Reason.HUMAN_REQUESTED, Destination.PEOPLE): (
        "Of course. I'm passing you to a member of our team; they'll reply here as soon as they can."
    ),
    (Reason.COMPLAINT, Destination.PEOPLE): (
        "I'm sorry about this. I'm passing you to a member of our team, who will reply here as soon as they can."
    ),
    (Reason.SENSITIVE, Destination.PEOPLE): (
        "This needs a member of our team. I've passed it on, and they'll reply here as soon as they can."
    ),
    (Reason.LARGE_MODEL_FAILED, Destination.PEOPLE): (
        "Sorry, I couldn't answer that myself. A member of our team will reply here as soon as they can."
    ),
    (Reason.ESCALATION_LIMIT, Destination.PEOPLE): (
        "We're busier than usual, so I'm passing this to a member of our team; they'll reply here as soon as they can."
    ),
    (Reason.LARGE_MODEL_SLOW, Destination.PEOPLE): (
        "This is taking longer than it should, so a member of our team will follow up here as soon as they can."
    ),
    (Reason.LARGE_MODEL_UNAVAILABLE, Destination.PEOPLE): (
        "I can't look into that myself right now, so I'm passing it to a member of our team; they'll reply here "
        "as soon as they can."
    ),
    (Reason.MULTI_PART, Destination.LARGE): "You've asked a few things at once. Let me look into all of them.",
}
_BY_DESTINATION: dict[Destination, str] = {
    Destination.LARGE: "Let me look into that for you.",
    Destination.PEOPLE: "I'm passing you to a member of our team; they'll reply here as soon as they can.",
}


# A large-model answer an agent checks before it is sent (TANDEM_REVIEW_LARGE_ANSWERS).
REVIEWED = "Let me look into that for you. A member of our team checks the answer before it reaches you."


def escalated(reason: Reason, destination: Destination) -> str:
    if destination == Destination.LARGE and reason in settings.TANDEM_REVIEW_LARGE_ANSWERS:
        return REVIEWED
    return _BY_REASON.get((reason, destination), _BY_DESTINATION[destination])


# Stored as `system` events when people let go of a conversation: the widget shows them in the chat.
HANDED_BACK = "You're back with our assistant."
CLOSED = "This conversation is closed — write again any time."

"""Routing a batch of customer messages: every signal the policy reads, computed once, in one place.

`route_many` is what the chat server runs (from its micro-batching thread, never on the event loop)
and what `evaluate_router` runs on a labelled test set: the message's language (chatbot.language), its
segments (chatbot.segments), the small model's predictions for the whole message and each segment
(one encoder call for the whole batch), whether the customer is upset (chatbot.complaint), whether
the encoder read all of it; then `chatbot.policy.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatbot import complaint, language, segments
from chatbot.language import Guess
from chatbot.policy import Part, Route, Signals, Thresholds, decide
from chatbot.routes import Destination, Reason
from chatbot.small.model import Prediction, SmallModel

MAX_SEGMENTS = 8


@dataclass(frozen=True)
class Incoming:
    text: str
    # The language the conversation has been in so far (None: none seen yet).
    conversation_language: str | None = None


@dataclass(frozen=True)
class Routed:
    route: Route
    # The small model's prediction for the whole message (None when the model could not run).
    prediction: Prediction | None
    # The language the message was taken to be in, and the guess itself (for the conversation's).
    language: str | None
    guess: Guess | None
    # Tokens the encoder read for this message (all its segments): the small tier's cost.
    input_tokens: int
    signals: Signals | None = None


def unavailable(thresholds: Thresholds) -> Routed:
    """The small model cannot run (not trained yet, or it failed on this message): the message goes where
    this reason routes."""
    reason = Reason.MODEL_UNAVAILABLE
    return Routed(Route(thresholds.routes.get(reason, Destination.LARGE), reason), None, None, None, 0)


def route_many(model: SmallModel, messages: list[Incoming], thresholds: Thresholds | None = None) -> list[Routed]:
    limits = thresholds or Thresholds.current(model.policy)
    guesses = [language.detect(message.text, limits.language) for message in messages]
    languages = [
        language.message_language(guess, message.conversation_language, limits.language)
        for message, guess in zip(messages, guesses, strict=True)
    ]
    # Segments only for messages in the knowledge base's language: the others are not classified
    # beyond the whole message (the large model answers them).
    split = [
        segments.split(message.text) if lang == limits.language else []
        for message, lang in zip(messages, languages, strict=True)
    ]
    # Each segment is one more text for the encoder: a message of dozens of fragments is read whole
    # (it is most likely too long for the small tier anyway), so no message costs more than MAX_SEGMENTS.
    split = [pieces if len(pieces) <= MAX_SEGMENTS else [] for pieces in split]
    texts = [message.text for message in messages]
    for pieces in split:
        if len(pieces) > 1:
            texts.extend(piece.text for piece in pieces)
    predictions = model.predict_many(texts)
    wholes, rest = predictions[: len(messages)], iter(predictions[len(messages) :])
    limit = model.encoder.max_length
    routed = []
    for message, guess, lang, pieces, whole in zip(messages, guesses, languages, split, wholes, strict=True):
        parts: tuple[Part, ...] = ()
        tokens = whole.input_tokens
        if len(pieces) > 1:
            parts = tuple(Part(piece.text, next(rest), piece.joined, piece.question) for piece in pieces)
            tokens += sum(part.prediction.input_tokens for part in parts)
        signals = Signals(
            text=message.text,
            whole=whole,
            parts=parts,
            language=lang,
            complaint=complaint.assess(message.text) if lang == limits.language else None,
            truncated=whole.input_tokens >= limit,
        )
        routed.append(Routed(decide(signals, limits), whole, lang, guess, tokens, signals))
    return routed

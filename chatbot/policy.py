"""The routing policy: where a message goes (small, large or people) and why.

One function, `decide`, shared by the live path and `evaluate_router`, so that what is measured is
what runs. It reads the signals `chatbot.routing` computes for a message (the small model's
predictions for the whole message and for each of its segments, its language, whether the customer is
upset, whether the encoder read all of it) and returns a `Route`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from chatbot.complaint import Complaint
from chatbot.routes import Destination, Reason
from chatbot.small.model import ModelNotTrained, Policy, Prediction, get_small_model
from chatbot.smalltalk import is_small_talk

__all__ = ["Destination", "Reason", "Route", "Reply", "Part", "Signals", "Thresholds", "decide", "asks_for_human"]


@dataclass(frozen=True)
class Thresholds:
    confidence: float
    oos_similarity: float
    sensitive_intents: frozenset[str]
    human_intents: frozenset[str]
    routes: Mapping[Reason, Destination] = field(default_factory=lambda: dict(settings.TANDEM_ROUTES))
    # The knowledge base's language: messages in another one go to the large model.
    language: str = "en"

    @classmethod
    def current(cls, trained: Policy | None = None) -> Thresholds:
        """The thresholds trained with the model in use (or the ones given), unless settings fix them."""
        if trained is None:
            try:
                trained = get_small_model().policy
            except ModelNotTrained:
                trained = None
        confidence = settings.TANDEM_CONFIDENCE_THRESHOLD
        if confidence is None:
            confidence = trained.confidence_threshold if trained else DEFAULT_CONFIDENCE
        similarity = settings.TANDEM_OOS_SIMILARITY
        if similarity is None:
            similarity = trained.oos_similarity if trained else DEFAULT_OOS_SIMILARITY
        return cls(
            confidence=confidence,
            oos_similarity=similarity,
            sensitive_intents=frozenset(settings.TANDEM_SENSITIVE_INTENTS),
            human_intents=frozenset(settings.TANDEM_HUMAN_INTENTS),
            routes=dict(settings.TANDEM_ROUTES),
            language=settings.TANDEM_KB_LANGUAGE,
        )

    def confident(self, prediction: Prediction) -> bool:
        return prediction.similarity >= self.oos_similarity and prediction.confidence >= self.confidence

    def small_talk(self, prediction: Prediction) -> bool:
        """Small talk, surely enough to answer it as such: the bar is lower than for an article's answer
        (a wrong "Hello! How can I help?" costs the customer one more message; an escalation costs a
        large-model call and tells them a person is looking into "hi")."""
        return (
            is_small_talk(prediction.intent)
            and prediction.similarity >= self.oos_similarity
            and prediction.confidence >= min(self.confidence, SMALL_TALK_CONFIDENCE)
        )


# For a model trained before thresholds were stored with it.
DEFAULT_CONFIDENCE = 0.5
DEFAULT_OOS_SIMILARITY = 0.45
SMALL_TALK_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Part:
    """One segment of a message (chatbot.segments) and what the small model made of it."""

    text: str
    prediction: Prediction
    # Opened by "also", "another thing" …: the customer meant a further request.
    joined: bool = False
    question: bool = False


@dataclass(frozen=True)
class Signals:
    text: str
    # The small model's prediction for the whole message.
    whole: Prediction
    # Its segments, when it has more than one (empty: the whole message is one segment).
    parts: tuple[Part, ...] = ()
    # The language the message is taken to be in (chatbot.language.message_language).
    language: str = "en"
    complaint: Complaint | None = None
    # The encoder read only the start of the message.
    truncated: bool = False


@dataclass(frozen=True)
class Reply:
    """A part the small tier answers: with the article (or small talk) of this intent."""

    intent: str
    confidence: float


@dataclass(frozen=True)
class Route:
    destination: Destination
    reason: Reason | None = None
    # For the small tier: what to answer, one reply per part, in the message's order.
    replies: tuple[Reply, ...] = ()

    @property
    def answer(self) -> bool:
        return self.destination == Destination.SMALL


def _escalate(reason: Reason, limits: Thresholds) -> Route:
    return Route(limits.routes.get(reason, Destination.LARGE), reason)


def _answer(*predictions: Prediction) -> Route:
    replies: list[Reply] = []
    for prediction in predictions:
        if prediction.intent not in {reply.intent for reply in replies}:
            replies.append(Reply(prediction.intent, prediction.confidence))
    return Route(Destination.SMALL, None, tuple(replies))


# Explicit requests for a person. The classifier also learns them (the `talk-to-human` article);
# this catches wordings it was not shown, whatever else the message says.
_HUMAN_REQUEST = re.compile(
    r"\b(?:(?:talk|speak|chat)\s+(?:to|with)\s+(?:a|an|some|the)?\s*"
    r"(?:human|person|agent|someone|somebody|representative|rep|operator|real\s+person|member\s+of\s+staff)"
    r"|(?:real|live)\s+(?:human|person|agent)"
    r"|human\s+(?:please|agent|being)"
    r"|customer\s+service\s+(?:agent|representative)"
    r"|(?:connect|transfer|put)\s+me\s+(?:to|through\s+to|with)\s+(?:a|an|the)?\s*(?:human|person|agent|someone))",
    re.IGNORECASE,
)


def asks_for_human(text: str) -> bool:
    return bool(_HUMAN_REQUEST.search(text))


def decide(signals: Signals, thresholds: Thresholds | None = None) -> Route:
    limits = thresholds or Thresholds.current()
    # A customer who asks for a person gets one, even if the bot could answer.
    if asks_for_human(signals.text):
        return _escalate(Reason.HUMAN_REQUESTED, limits)
    # The encoder and the articles are in the knowledge base's language; the large model is told to
    # answer in the customer's.
    if signals.language != limits.language:
        return _escalate(Reason.LANGUAGE, limits)
    # An upset customer goes to people even when an article matches.
    if signals.complaint is not None and signals.complaint.upset:
        return _escalate(Reason.COMPLAINT, limits)

    segments = signals.parts or (Part(signals.text, signals.whole),)
    talk = [part for part in segments if limits.small_talk(part.prediction)]
    asks = [part for part in segments if not limits.small_talk(part.prediction)]
    if not asks:
        # Only small talk ("hi", "thanks, bye"): one friendly reply, never an escalation.
        return _answer(max(talk, key=lambda part: part.prediction.confidence).prediction)
    if len(asks) == 1:
        # One request, perhaps with a greeting or thanks around it: decided on the request alone.
        only = asks[0].prediction if signals.parts else signals.whole
        return _single(only, signals.truncated, limits)
    return _several(asks, signals, limits)


def _single(prediction: Prediction, truncated: bool, limits: Thresholds) -> Route:
    if prediction.similarity < limits.oos_similarity:
        return _escalate(Reason.OUT_OF_SCOPE, limits)
    # A sensitive topic goes to people however unsure the classifier is that it is one.
    if prediction.intent in limits.sensitive_intents:
        return _escalate(Reason.SENSITIVE, limits)
    if truncated:
        return _escalate(Reason.LONG, limits)
    if prediction.confidence < limits.confidence:
        return _escalate(Reason.LOW_CONFIDENCE, limits)
    if prediction.intent in limits.human_intents:
        return _escalate(Reason.HUMAN_REQUESTED, limits)
    return _answer(prediction)


def _several(asks: list[Part], signals: Signals, limits: Thresholds) -> Route:
    """Two or more segments that are not small talk: one request with context around it, or several."""
    for part in asks:
        if part.prediction.similarity >= limits.oos_similarity and part.prediction.intent in limits.sensitive_intents:
            return _escalate(Reason.SENSITIVE, limits)
        if limits.confident(part.prediction) and part.prediction.intent in limits.human_intents:
            return _escalate(Reason.HUMAN_REQUESTED, limits)
    strong = [part for part in asks if limits.confident(part.prediction)]
    intents = {part.prediction.intent for part in strong}
    # A further request the small model cannot answer: answering the rest would drop it.
    unanswered = [part for part in asks if part not in strong and (part.joined or (part.question and len(intents) > 1))]
    if len(intents) >= 2:
        if unanswered:
            return _escalate(Reason.MULTI_PART, limits)
        # Every request is confidently routine: answer each one, in order.
        return _answer(*(part.prediction for part in strong))
    if unanswered:
        return _escalate(Reason.MULTI_PART, limits)
    # One request (the other segments are context around it, or say the same thing again).
    if limits.confident(signals.whole) or not strong:
        return _single(signals.whole, signals.truncated, limits)
    return _single(strong[0].prediction, signals.truncated, limits)

"""The routing policy: answer now with the small model, or escalate and say why.

One function, `decide`, shared by the live path and anything that evaluates the router, so that what
is measured is what runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings

from chatbot.small.model import ModelNotTrained, Policy, Prediction, get_small_model


class Reason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    OUT_OF_SCOPE = "out_of_scope"
    HUMAN_REQUESTED = "human_requested"
    SENSITIVE = "sensitive"


@dataclass(frozen=True)
class Decision:
    answer: bool
    reason: Reason | None = None

    @classmethod
    def answer_now(cls) -> Decision:
        return cls(answer=True)

    @classmethod
    def escalate(cls, reason: Reason) -> Decision:
        return cls(answer=False, reason=reason)


@dataclass(frozen=True)
class Thresholds:
    confidence: float
    oos_similarity: float
    sensitive_intents: frozenset[str]
    human_intents: frozenset[str]

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
        )


# For a model trained before thresholds were stored with it.
DEFAULT_CONFIDENCE = 0.5
DEFAULT_OOS_SIMILARITY = 0.45


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


def decide(text: str, prediction: Prediction, thresholds: Thresholds | None = None) -> Decision:
    limits = thresholds or Thresholds.current()
    # A customer who asks for a person gets one, even if the bot could answer.
    if asks_for_human(text):
        return Decision.escalate(Reason.HUMAN_REQUESTED)
    if prediction.similarity < limits.oos_similarity:
        return Decision.escalate(Reason.OUT_OF_SCOPE)
    # A sensitive topic goes to people however unsure the classifier is that it is one.
    if prediction.intent in limits.sensitive_intents:
        return Decision.escalate(Reason.SENSITIVE)
    if prediction.confidence < limits.confidence:
        return Decision.escalate(Reason.LOW_CONFIDENCE)
    if prediction.intent in limits.human_intents:
        return Decision.escalate(Reason.HUMAN_REQUESTED)
    return Decision.answer_now()

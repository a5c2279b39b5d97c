import pytest

from chatbot.policy import Decision, Reason, Thresholds, asks_for_human, decide
from chatbot.small.model import Prediction

LIMITS = Thresholds(
    confidence=0.5,
    oos_similarity=0.45,
    sensitive_intents=frozenset({"close-account"}),
    human_intents=frozenset({"talk-to-human"}),
)


def prediction(intent: str = "track-order", confidence: float = 0.9, similarity: float = 0.8) -> Prediction:
    return Prediction(intent=intent, confidence=confidence, similarity=similarity, input_tokens=5)


def test_a_confident_in_scope_question_is_answered() -> None:
    assert decide("where is my order", prediction(), LIMITS) == Decision.answer_now()


def test_an_unsure_classifier_escalates() -> None:
    assert decide("hmm", prediction(confidence=0.49), LIMITS) == Decision.escalate(Reason.LOW_CONFIDENCE)


def test_a_question_unlike_anything_in_the_knowledge_base_is_out_of_scope() -> None:
    assert decide("poem please", prediction(similarity=0.2), LIMITS) == Decision.escalate(Reason.OUT_OF_SCOPE)


def test_a_sensitive_intent_escalates_however_confident() -> None:
    result = decide("close my account", prediction("close-account", confidence=0.99), LIMITS)
    assert result == Decision.escalate(Reason.SENSITIVE)


def test_asking_for_a_person_wins_over_a_confident_answer() -> None:
    result = decide("where is my order? let me talk to a human", prediction(confidence=0.99), LIMITS)
    assert result == Decision.escalate(Reason.HUMAN_REQUESTED)


def test_the_human_intent_needs_the_classifier_to_be_sure() -> None:
    assert decide("agent", prediction("talk-to-human", 0.9), LIMITS).reason == Reason.HUMAN_REQUESTED
    assert decide("hi", prediction("talk-to-human", 0.2), LIMITS).reason == Reason.LOW_CONFIDENCE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Can I speak to a human?", True),
        ("I want to talk to a real person", True),
        ("connect me to an agent", True),
        ("human please", True),
        ("what are your agent fees for trade accounts", False),
        ("is this product safe for humans", False),
    ],
)
def test_requests_for_a_person_are_recognised(text: str, expected: bool) -> None:
    assert asks_for_human(text) is expected

"""The routing policy: from the signals of one message to a destination and a reason."""

import pytest

from chatbot.complaint import Complaint
from chatbot.policy import Part, Reply, Route, Signals, Thresholds, asks_for_human, decide
from chatbot.routes import Destination, Reason, parse_routes
from chatbot.small.model import Prediction

LIMITS = Thresholds(
    confidence=0.5,
    oos_similarity=0.45,
    sensitive_intents=frozenset({"close-account"}),
    human_intents=frozenset({"talk-to-human"}),
    routes=parse_routes(""),
    language="en",
)


def prediction(intent: str = "track-order", confidence: float = 0.9, similarity: float = 0.8) -> Prediction:
    return Prediction(intent=intent, confidence=confidence, similarity=similarity, input_tokens=5)


def signals(text: str, whole: Prediction | None = None, **fields: object) -> Signals:
    return Signals(text=text, whole=whole or prediction(), **fields)  # type: ignore[arg-type]


def answered(*intents: str) -> Route:
    return Route(Destination.SMALL, None, tuple(Reply(i, 0.9) for i in intents))


def test_a_confident_in_scope_question_is_answered() -> None:
    assert decide(signals("where is my order"), LIMITS) == answered("track-order")


def test_an_unsure_classifier_sends_the_question_to_the_large_model() -> None:
    route = decide(signals("hmm", prediction(confidence=0.49)), LIMITS)
    assert route == Route(Destination.LARGE, Reason.LOW_CONFIDENCE)


def test_a_question_unlike_anything_in_the_knowledge_base_is_out_of_scope() -> None:
    route = decide(signals("poem please", prediction(similarity=0.2)), LIMITS)
    assert route == Route(Destination.LARGE, Reason.OUT_OF_SCOPE)


def test_a_sensitive_intent_goes_to_people_however_confident() -> None:
    route = decide(signals("close my account", prediction("close-account", confidence=0.99)), LIMITS)
    assert route == Route(Destination.PEOPLE, Reason.SENSITIVE)


def test_asking_for_a_person_wins_over_a_confident_answer() -> None:
    route = decide(signals("where is my order? let me talk to a human", prediction(confidence=0.99)), LIMITS)
    assert route == Route(Destination.PEOPLE, Reason.HUMAN_REQUESTED)


def test_the_human_intent_needs_the_classifier_to_be_fairly_sure() -> None:
    strict = Thresholds(0.95, 0.6, frozenset(), frozenset({"talk-to-human"}), parse_routes(""), "en")
    agent = decide(signals("agent", prediction("talk-to-human", 0.7, similarity=0.5)), strict)
    assert agent.reason == Reason.HUMAN_REQUESTED
    assert decide(signals("hi", prediction("talk-to-human", 0.2)), strict).reason == Reason.LOW_CONFIDENCE


def test_small_talk_is_answered_even_below_the_articles_confidence_bar() -> None:
    strict = Thresholds(0.95, 0.45, frozenset(), frozenset(), parse_routes(""), "en")
    route = decide(signals("hello there", prediction("smalltalk-greeting", confidence=0.7)), strict)
    assert route == Route(Destination.SMALL, None, (Reply("smalltalk-greeting", 0.7),))


def test_a_greeting_in_front_of_a_question_is_answered_as_the_question() -> None:
    parts = (
        Part("hi", prediction("smalltalk-greeting", 0.99)),
        Part("how do I reset my password?", prediction("reset-password", 0.95), question=True),
    )
    route = decide(signals("hi, how do I reset my password?", prediction("reset-password", 0.7), parts=parts), LIMITS)
    assert route == Route(Destination.SMALL, None, (Reply("reset-password", 0.95),))


def test_two_confident_questions_are_both_answered_in_order() -> None:
    parts = (
        Part("where is my order?", prediction("track-order", 0.95), question=True),
        Part("how do I reset my password?", prediction("reset-password", 0.9), joined=True, question=True),
    )
    route = decide(signals("where is my order? also how do I reset my password?", parts=parts), LIMITS)
    assert route == Route(Destination.SMALL, None, (Reply("track-order", 0.95), Reply("reset-password", 0.9)))


def test_a_further_request_the_small_model_cannot_answer_escalates_the_whole_message() -> None:
    parts = (
        Part("where is my order?", prediction("track-order", 0.95), question=True),
        Part("can I pay in bitcoin", prediction("payment-methods", 0.3), joined=True, question=True),
    )
    whole = prediction("track-order", 0.45)
    route = decide(signals("where is my order? also can I pay in bitcoin", whole, parts=parts), LIMITS)
    assert route == Route(Destination.LARGE, Reason.MULTI_PART)


def test_a_context_sentence_before_the_question_is_not_a_second_question() -> None:
    parts = (
        Part("I live in Spain.", prediction("delivery-options", 0.3)),
        Part("How much is shipping?", prediction("delivery-costs", 0.95), question=True),
    )
    whole = prediction("delivery-costs", 0.9)
    route = decide(signals("I live in Spain. How much is shipping?", whole, parts=parts), LIMITS)
    assert route == answered("delivery-costs")


def test_a_second_question_about_something_else_escalates_even_when_the_whole_looks_like_one_request() -> None:
    # No word marks a further request and the classifier is sure of the whole message, but the second
    # sentence is a question of its own, surely about another topic: not answered in half.
    parts = (
        Part("I want to cancel what I did this morning", prediction("cancel-transfer", 0.7)),
        Part("Is there a limit for top-ups?", prediction("top-up-limits", 0.97), question=True),
    )
    text = "I want to cancel what I did this morning Is there a limit for top-ups?"
    route = decide(signals(text, prediction("cancel-transfer", 0.99), parts=parts), LIMITS)
    assert route == Route(Destination.LARGE, Reason.MULTI_PART)


def test_a_sensitive_part_sends_a_multi_part_message_to_people() -> None:
    parts = (
        Part("where is my order?", prediction("track-order", 0.95), question=True),
        Part("and close my account", prediction("close-account", 0.4), joined=True),
    )
    route = decide(signals("where is my order? and close my account", parts=parts), LIMITS)
    assert route == Route(Destination.PEOPLE, Reason.SENSITIVE)


def test_an_upset_customer_goes_to_people_even_when_an_article_matches() -> None:
    upset = Complaint(True, "pattern", -0.8)
    route = decide(signals("where is my order, this is the third time I ask!", complaint=upset), LIMITS)
    assert route == Route(Destination.PEOPLE, Reason.COMPLAINT)


def test_a_message_in_another_language_goes_to_the_large_model() -> None:
    route = decide(signals("où est ma commande", language="fr"), LIMITS)
    assert route == Route(Destination.LARGE, Reason.LANGUAGE)


def test_a_message_longer_than_the_encoder_reads_goes_to_the_large_model() -> None:
    route = decide(signals("a very long story", truncated=True), LIMITS)
    assert route == Route(Destination.LARGE, Reason.LONG)


def test_small_talk_is_never_escalated_as_long() -> None:
    route = decide(signals("thanks " * 200, prediction("smalltalk-thanks", 0.9), truncated=True), LIMITS)
    assert route.destination == Destination.SMALL


def test_settings_route_a_reason_elsewhere() -> None:
    limits = Thresholds(0.5, 0.45, frozenset(), frozenset(), parse_routes("low_confidence=people"), "en")
    assert decide(signals("hmm", prediction(confidence=0.2)), limits) == Route(
        Destination.PEOPLE, Reason.LOW_CONFIDENCE
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("low_confidence", "not reason=destination"),
        ("sleepy=people", "unknown reason"),
        ("low_confidence=moon", "unknown destination"),
        ("low_confidence=small", "cannot go to small"),
        ("large_model_failed=large", "always goes to people"),
    ],
)
def test_a_malformed_routing_table_is_refused_with_a_clear_error(raw: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_routes(raw)


def test_the_default_routing_table_is_the_documented_one() -> None:
    table = parse_routes("")
    large = {Reason.OUT_OF_SCOPE, Reason.LOW_CONFIDENCE, Reason.MULTI_PART, Reason.LANGUAGE, Reason.LONG}
    people = {Reason.HUMAN_REQUESTED, Reason.SENSITIVE, Reason.COMPLAINT}
    assert {r for r in large if table[r] == Destination.LARGE} == large
    assert {r for r in people if table[r] == Destination.PEOPLE} == people


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Can I speak to a human?", True),
        ("I want to talk to a real person", True),
        ("connect me to an agent", True),
        ("human please", True),
        # One typing slip in a key word.
        ("how can I speak with a hman agent?", True),
        ("help me contacy an operator", True),
        ("help chattinb with an operator", True),
        # Wordings without "talk to a person".
        ("is there any human available?", True),
        ("I don't like to talk to a machine", True),
        ("talking to a bot is pointless", True),
        ("I'd rather speak with a real company employee", True),
        ("what are your agent fees for trade accounts", False),
        ("is this product safe for humans", False),
        # Asking what the assistant is: small talk, not a request.
        ("tell me if you are a real person or an ai", False),
        ("are you a real person?", False),
        ("I want to talk about my contract", False),
        ("Is my card available in Spain?", False),
    ],
)
def test_requests_for_a_person_are_recognised(text: str, expected: bool) -> None:
    assert asks_for_human(text) is expected

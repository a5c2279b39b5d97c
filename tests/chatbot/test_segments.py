"""Splitting a message into the things it says."""

import pytest

from chatbot.segments import split


def texts(message: str) -> list[str]:
    return [segment.text for segment in split(message)]


def test_a_single_question_is_one_segment() -> None:
    assert texts("I was charged twice and want a refund") == ["I was charged twice and want a refund"]


def test_a_greeting_in_front_is_set_apart() -> None:
    assert texts("hi, how do I reset my password?") == ["hi", "how do I reset my password?"]
    assert texts("Hello there can you tell me if you deliver to Ireland") == [
        "Hello there",
        "can you tell me if you deliver to Ireland",
    ]


def test_a_greeting_alone_stays_whole() -> None:
    assert texts("hi there") == ["hi there"]


def test_thanks_behind_a_question_is_set_apart() -> None:
    assert texts("Can I change my PIN at an ATM, thanks") == ["Can I change my PIN at an ATM", "thanks"]


@pytest.mark.parametrize(
    "message",
    [
        "Where is my order? Also, how do I return a sofa?",
        "Where is my order and also how do I return a sofa",
        "Where is my order. Another thing: how do I return a sofa",
        "Where is my order; how do I return a sofa",
        "Where is my order\nhow do I return a sofa",
        "Where is my order? Plus how do I return a sofa",
    ],
)
def test_two_questions_are_split_however_they_are_joined(message: str) -> None:
    segments = split(message)
    assert len(segments) == 2
    assert segments[1].text.lower().startswith("how do i return a sofa")
    assert segments[1].question


def test_a_connector_marks_the_second_part_as_a_further_request() -> None:
    first, second = split("My parcel arrived damaged, and I also want to change my delivery address")
    assert not first.joined and second.joined
    assert second.text == "I also want to change my delivery address"


def test_a_decimal_point_is_not_a_sentence_end() -> None:
    assert len(split("Why does my transfer take 2.5 days?")) == 1


def test_a_missing_full_stop_before_a_capitalised_question_still_ends_a_sentence() -> None:
    assert texts("I want to cancel what I did this morning Is there a limit for top-ups?") == [
        "I want to cancel what I did this morning",
        "Is there a limit for top-ups?",
    ]


def test_a_capitalised_question_word_inside_a_short_question_is_not_a_sentence_end() -> None:
    assert len(split("Where Is the top up verification code found?")) == 1

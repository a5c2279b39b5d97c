"""Recognising an upset customer, and not a routine problem."""

import pytest

from chatbot.complaint import assess, shouting


@pytest.mark.parametrize(
    "text",
    [
        "This is the third time I've asked about my refund!",
        "Your service is absolutely useless, I'm taking my business elsewhere",
        "I'm so frustrated, nobody has replied to my emails for two weeks",
        "WHERE IS MY ORDER I HAVE BEEN WAITING FOR WEEKS",
        "This is ridiculous, I want to make a formal complaint",
        "you guys are a joke",
        "I want to file a claim against your company",
    ],
)
def test_complaints_and_frustration_are_recognised(text: str) -> None:
    assert assess(text).upset, text


@pytest.mark.parametrize(
    "text",
    [
        "My card was stolen, what should I do?",
        "I was charged twice for the same order",
        "My parcel arrived damaged",
        "I still have not received my new card",
        "How do I get a refund for a faulty kettle?",
        "Can I use my PIN at an ATM abroad?",
        "How do I claim a refund?",
    ],
)
def test_routine_problems_are_not_complaints(text: str) -> None:
    assert not assess(text).upset, text


def test_an_acronym_is_not_shouting() -> None:
    assert not shouting("Where can I change my PIN at an ATM?")
    assert shouting("I NEED MY MONEY BACK NOW")

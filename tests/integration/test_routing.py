"""Routing over the real socket: small talk, a two-part message, a request for a person (with a large-model
answer already queued), and a message in another language."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import ChatClient, Stack

pytestmark = pytest.mark.integration

HARD = "Can I return a sofa I bought 40 days ago that my cat scratched?"


def is_type(kind: str, **fields: object):  # type: ignore[no-untyped-def]
    return lambda frame: frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hello", "smalltalk-greeting"),
        ("thanks, that helped!", "smalltalk-thanks"),
        ("are you a bot?", "smalltalk-bot"),
    ],
)
def test_small_talk_is_answered_at_once_and_never_escalated(visitor: ChatClient, text: str, intent: str) -> None:
    visitor.ask("s1", text)
    assert visitor.next_frame()["type"] == "ack"
    answer = visitor.next_frame()
    assert answer["type"] == "answer" and answer["tier"] == "small" and answer["intent"] == intent
    assert answer["text"]
    assert [f for f in visitor.drain(1) if f["type"] in ("escalated", "token")] == []


def test_a_greeting_in_front_of_a_question_is_answered_as_the_question(visitor: ChatClient) -> None:
    visitor.ask("g1", "hi, how do I reset my password?")
    visitor.next_frame()
    answer = visitor.next_frame()
    assert answer["type"] == "answer" and answer["intent"] == "reset-password"


def test_a_two_part_message_gets_an_answer_for_each_part_in_order(visitor: ChatClient) -> None:
    visitor.ask("p1", "How do I reset my password? Also, how do I get a VAT invoice?")
    assert visitor.next_frame()["type"] == "ack"
    first, second = visitor.next_frame(), visitor.next_frame()
    assert [first["type"], second["type"]] == ["answer", "answer"]
    assert [first["intent"], second["intent"]] == ["reset-password", "vat-invoice"]
    assert [(first["part"], first["parts"]), (second["part"], second["parts"])] == [(1, 2), (2, 2)]
    assert first["reply_to"] == second["reply_to"] == "p1" and first["seq"] + 1 == second["seq"]


def test_a_request_for_a_person_gets_no_bot_answer_after_it_even_with_a_large_answer_queued(
    stack: Stack, visitor: ChatClient
) -> None:
    visitor.ask("q1", HARD)
    visitor.next_frame()
    queued = visitor.next_frame()
    assert queued["type"] == "escalated" and queued["destination"] == "large"
    # At once, before the worker has answered: the customer asks for a person.
    visitor.ask("q2", "I want to talk to a human agent please")
    people = visitor.wait_for(is_type("escalated", reply_to="q2"), timeout=10)
    assert people["reason"] == "human_requested" and people["destination"] == "people"
    assert "member of our team" in people["text"]
    after_people = len(visitor.frames)

    # The large model's answer to q1 is written all the same, as a draft only agents see.
    conversation = visitor.session["conversation"]
    deadline = time.monotonic() + 240
    draft: dict[str, object] | None = None
    while time.monotonic() < deadline and draft is None:
        printed = stack.manage(
            "shell",
            "-c",
            "import json; from support.conversations.models import Message; "
            f"print(json.dumps(list(Message.objects.filter(conversation_id='{conversation}', tier='large')"
            ".values('delivered', 'reply_to__client_id'))))",
        )
        found = json.loads(printed.strip().splitlines()[-1])
        draft = found[0] if found else None
        if draft is None:
            time.sleep(1)
    assert draft == {"delivered": False, "reply_to__client_id": "q1"}

    # A routine question now waits for the agent too.
    visitor.ask("q3", "How do I reset my password?")
    later = visitor.frames[after_people:] + visitor.drain(2)
    assert [f["type"] for f in later] == ["ack"], later


def test_a_message_in_another_language_goes_to_the_large_model_which_answers(visitor: ChatClient) -> None:
    visitor.ask("l1", "Bonjour, je voudrais changer l'adresse de livraison de ma commande, s'il vous plaît")
    visitor.next_frame()
    escalated = visitor.next_frame()
    assert escalated["type"] == "escalated"
    assert (escalated["reason"], escalated["destination"]) == ("language", "large")
    answer = visitor.wait_for(is_type("answer", reply_to="l1"), timeout=240)
    assert answer["tier"] == "large" and answer["text"]

"""Routing whole messages with a trained model: every signal, computed once, then the policy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chatbot.routes import Destination, Reason
from chatbot.routing import Incoming, Routed, route_many
from chatbot.small.model import get_small_model


def route(text: str, conversation_language: str | None = None) -> Routed:
    return route_many(get_small_model(), [Incoming(text, conversation_language)])[0]


@pytest.mark.usefixtures("small_model_dir")
class TestRoutingWithTheDemoModel:
    def test_a_routine_question_is_answered_by_the_small_tier(self) -> None:
        routed = route("How do I reset my password?")
        assert routed.route.destination == Destination.SMALL
        assert [reply.intent for reply in routed.route.replies] == ["reset-password"]
        assert routed.language == "en" and routed.input_tokens > 3

    @pytest.mark.parametrize("text", ["hello", "hi there", "thanks, that helped!", "bye", "are you a bot?", "ok"])
    def test_small_talk_is_answered_by_the_small_tier(self, text: str) -> None:
        routed = route(text)
        assert routed.route.destination == Destination.SMALL, routed
        assert routed.route.replies[0].intent.startswith("smalltalk-")

    def test_a_greeting_in_front_of_a_question_is_answered_as_the_question(self) -> None:
        assert [r.intent for r in route("hi, how do I reset my password?").route.replies] == ["reset-password"]

    def test_two_routine_questions_get_two_answers(self) -> None:
        routed = route("How do I reset my password? Also, how do I get a VAT invoice?")
        assert [r.intent for r in routed.route.replies] == ["reset-password", "vat-invoice"]
        # Both segments and the whole message were read: the cost counts them all.
        assert routed.input_tokens > route("How do I reset my password?").input_tokens

    def test_a_message_in_another_language_goes_to_the_large_model(self) -> None:
        routed = route("Bonjour, je voudrais changer l'adresse de livraison de ma commande")
        assert (routed.route.destination, routed.route.reason) == (Destination.LARGE, Reason.LANGUAGE)
        assert routed.language == "fr" and routed.guess is not None and routed.guess.reliable

    def test_a_short_message_keeps_the_conversations_language(self) -> None:
        routed = route("ok", conversation_language="fr")
        assert routed.language == "fr" and routed.route.reason == Reason.LANGUAGE

    def test_a_message_longer_than_the_encoder_reads_goes_to_the_large_model(self) -> None:
        story = "I ordered a sofa for my living room and " * 30 + "where is my order?"
        routed = route(story)
        assert routed.route.reason == Reason.LONG

    def test_a_message_of_many_fragments_is_read_whole_not_fragment_by_fragment(self) -> None:
        routed = route("? ".join(["where is my order"] * 40))
        assert routed.signals is not None and routed.signals.parts == ()

    def test_an_upset_customer_goes_to_people_even_when_an_article_matches(self) -> None:
        routed = route("Where is my order?? This is the third time I'm asking, absolutely ridiculous!")
        assert (routed.route.destination, routed.route.reason) == (Destination.PEOPLE, Reason.COMPLAINT)


def test_the_chatbot_library_never_imports_the_support_apps() -> None:
    root = Path(__file__).resolve().parents[2] / "chatbot"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.relative_to(root)}: {name}" for name in names if name.split(".")[0] == "support"]
    assert offenders == []

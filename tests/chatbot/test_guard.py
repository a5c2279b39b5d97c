"""The output guard: no quote of the instructions and nothing over the length limit reaches the customer."""

from __future__ import annotations

import pytest

from chatbot.llm.guard import QUOTE_WORDS, AnswerRefused, OutputGuard

INSTRUCTIONS = (
    "You are the customer-support assistant of Brightbox. Answer the customer's last message in two or three "
    "friendly sentences, using only the knowledge-base articles below."
)


def stream(guard: OutputGuard, text: str) -> None:
    for word in text.split(" "):
        guard.feed(word + " ")


def test_an_ordinary_answer_streams_whole_and_in_order() -> None:
    sent: list[str] = []
    guard = OutputGuard(INSTRUCTIONS, 2000, forward=sent.append)
    answer = "You can return a sofa within 30 days if it is unused. Scratches from pets are not covered, sorry!"
    stream(guard, answer)
    assert len(sent) > 1  # streamed, not all at the end
    guard.finish(answer + " ")
    assert "".join(sent) == answer + " "


def test_an_answer_that_quotes_the_instructions_is_stopped_before_the_quote_is_sent() -> None:
    sent: list[str] = []
    guard = OutputGuard(INSTRUCTIONS, 2000, forward=sent.append)
    leak = "Sure! My instructions say: Answer the customer's last message in two or three friendly sentences."
    with pytest.raises(AnswerRefused, match="quotes"):
        stream(guard, leak)
    shown = "".join(sent).lower().split()
    quoted = ["answer", "the", "customer's", "last", "message", "in", "two", "or", "three"]
    assert not any(shown[i : i + QUOTE_WORDS] == quoted[:QUOTE_WORDS] for i in range(len(shown)))


def test_a_few_words_in_common_with_the_instructions_are_not_a_quote() -> None:
    guard = OutputGuard(INSTRUCTIONS, 2000)
    guard.finish("I'll answer in a few friendly sentences: the articles say returns take 30 days.")


def test_an_answer_over_the_length_limit_is_stopped() -> None:
    guard = OutputGuard(INSTRUCTIONS, 100)
    with pytest.raises(AnswerRefused, match="longer than 100"):
        stream(guard, "word " * 30)


def test_the_whole_answer_is_checked_again_at_the_end() -> None:
    # A back end that streams nothing (or differently) is still checked on its final text.
    guard = OutputGuard(INSTRUCTIONS, 2000)
    with pytest.raises(AnswerRefused):
        guard.finish("Here: You are the customer-support assistant of Brightbox. Answer the customer's last message")

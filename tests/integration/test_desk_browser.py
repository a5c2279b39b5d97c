"""An agent's shift at the desk, and an admin's retraining, in headless Chromium against the real stack:
two agents at once, nothing reloads, and every step reaches the customer's real socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import AGENT_USER, ChatClient, Stack, agent_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SECOND_AGENT, SECOND_PASSWORD = "sam", "sam-password-1"
ADMIN, ADMIN_PASSWORD = "boss", "boss-password-1"


@pytest.fixture(scope="module")
def people(stack: Stack) -> None:
    stack.manage("create_agent", SECOND_AGENT, "--name", "Sam", "--password-stdin", stdin=SECOND_PASSWORD + "\n")
    stack.manage("create_agent", ADMIN, "--admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    stack.manage(
        "shell",
        "-c",
        "from support.review.models import CannedReply; "
        "CannedReply.objects.create(title='Order number please', text='Could you give me your order number?')",
    )


@pytest.fixture
def customers(stack: Stack) -> Iterator[list[ChatClient]]:
    opened = [ChatClient(stack), ChatClient(stack)]
    yield opened
    for customer in opened:
        customer.close()


def test_two_agents_work_a_shift_in_the_browser_without_a_reload(
    stack: Stack, browser: Any, people: None, customers: list[ChatClient]
) -> None:
    alex = agent_page(stack, browser, "/review/")
    sam = agent_page(stack, browser, "/review/", SECOND_AGENT, SECOND_PASSWORD)
    first, second = customers
    first.ask("s1", "I want to speak to a human")
    second.ask("s2", "I want to speak to a human")
    for customer in customers:
        customer.wait_for(lambda frame: frame["type"] == "escalated")
    ids = [customer.session["conversation"] for customer in customers]
    # Both queues show both customers live, and each agent sees the other online.
    for page in (alex, sam):
        for conversation in ids:
            page.wait_for_selector(f"tr[data-conversation='{conversation}']", timeout=15000)
        assert page.evaluate("window.sameLoad") is True
    alex.wait_for_selector("[data-online='sam']", timeout=15000)

    # Alex claims the first; Sam, on the same conversation, is refused.
    alex.goto(f"{stack.http}/review/{ids[0]}/")
    alex.wait_for_selector("body[data-live-connected='true']", state="attached")
    sam.goto(f"{stack.http}/review/{ids[0]}/")
    sam.wait_for_selector("body[data-live-connected='true']", state="attached")
    sam.evaluate("window.sameLoad = true")
    alex.keyboard.press("c")
    alex.wait_for_selector("text=You are handling this conversation")
    # Sam's open page follows: the claim button goes, and Alex shows as the owner.
    sam.wait_for_selector("#claim", state="detached", timeout=15000)
    assert f"({AGENT_USER})" in sam.inner_text("#live-conversation")

    # Alex writes: the customer sees who is typing; a canned reply goes in from the search.
    alex.keyboard.press("r")
    alex.keyboard.type("Hello, ")
    first.wait_for(lambda frame: frame["type"] == "typing" and frame["agent"] == "Alex")
    alex.keyboard.press("Escape")
    alex.keyboard.press("/")
    alex.keyboard.type("order number")
    alex.wait_for_selector("#snippet-results li[data-snippet='canned']")
    alex.keyboard.press("Enter")
    assert alex.input_value("#reply-text") == "Hello, Could you give me your order number?"
    alex.click("#send-reply")
    answer = first.wait_for(lambda frame: frame["type"] == "answer")
    assert (answer["text"], answer["tier"], answer["agent"]) == (
        "Hello, Could you give me your order number?",
        "agent",
        "Alex",
    )

    # A note Alex leaves reaches Sam's open page without a reload, and never the customer.
    alex.fill("#note-text", "Refund over 500: ask Dana first")
    alex.click("#add-note")
    sam.wait_for_selector("text=Refund over 500: ask Dana first", timeout=15000)
    assert sam.evaluate("window.sameLoad") is True

    # One click confirms the desk's guess of what the question was about.
    alex.wait_for_selector("[data-confirm-label]")
    alex.click("[data-confirm-label]")
    alex.wait_for_selector("[data-labelled]")

    # Sam, on the same page, still cannot take it over.
    assert sam.locator("#claim").count() == 0

    # Alex hands it back: the customer is told.
    alex.keyboard.press("h")
    back = first.wait_for(lambda frame: frame["type"] == "system")
    assert back["event"] == "handed_back"

    # Sam takes the second customer from the queue with the keyboard, and closes it.
    sam.goto(f"{stack.http}/review/")
    sam.wait_for_selector(f"tr[data-conversation='{ids[1]}']")
    rows = sam.locator("#live-queue tr[data-conversation]").evaluate_all(
        "rows => rows.map(r => r.dataset.conversation)"
    )
    for _ in range(rows.index(ids[1]) + 1):
        sam.keyboard.press("j")
    sam.keyboard.press("Enter")
    sam.wait_for_url(f"**/review/{ids[1]}/")
    sam.wait_for_selector("#claim")
    sam.keyboard.press("c")
    sam.wait_for_selector("text=You are handling this conversation")
    sam.goto(f"{stack.http}/review/?owner=mine")
    sam.wait_for_selector(f"tr[data-conversation='{ids[1]}']")
    assert sam.locator(f"tr[data-conversation='{ids[0]}']").count() == 0
    sam.goto(f"{stack.http}/review/{ids[1]}/")
    sam.keyboard.press("x")
    closed = second.wait_for(lambda frame: frame["type"] == "system")
    assert closed["event"] == "closed"
    alex.screenshot(path=str(stack.logs / "desk-shift-alex.png"), full_page=True)
    alex.close()
    sam.close()


def test_an_agent_sends_an_edited_draft_and_rejects_another(
    stack: Stack, browser: Any, people: None, customers: list[ChatClient]
) -> None:
    first, second = customers
    for customer, client_id in ((first, "d1"), (second, "d2")):
        customer.ask(client_id, "I want to speak to a human")
        customer.wait_for(lambda frame: frame["type"] == "escalated")
    # The large model's drafts, stored as the worker stores them (the bundled model is slow to write one).
    for customer, client_id in ((first, "d1"), (second, "d2")):
        stack.manage(
            "shell",
            "-c",
            "from chatbot.llm.base import Generation; from support.conversations import actions; "
            "from support.conversations.models import Message; "
            f"m = Message.objects.get(conversation_id='{customer.session['conversation']}', client_id='{client_id}'); "
            "actions.store_large_answer(m.pk, Generation('You can return a sofa within 30 days.', 50, 9, 'stand-in'), "
            "[{'slug': 'how-to-return', 'title': 'How do I return an item?'}])",
        )
    alex = agent_page(stack, browser, f"/review/{first.session['conversation']}/")
    alex.wait_for_selector("[data-draft]")
    assert "How do I return an item?" in alex.inner_text("[data-draft] .sources")
    box = alex.locator("[data-draft] textarea")
    box.fill("You can return a sofa within 30 days; we collect it for free.")
    assert alex.locator("[data-approve]").is_disabled(), "once edited, only the edited version can be sent"
    alex.click("[data-send-edited]")
    answer = first.wait_for(lambda frame: frame["type"] == "answer")
    assert answer["text"] == "You can return a sofa within 30 days; we collect it for free."
    alex.wait_for_selector("[data-labelled], [data-confirm-label]")

    alex.goto(f"{stack.http}/review/{second.session['conversation']}/")
    alex.wait_for_selector("[data-draft]")
    alex.fill("[data-draft] input[name=reason]", "Sofas follow the large-item rules")
    alex.click("[data-reject]")
    alex.wait_for_selector("text=The draft was rejected")
    assert not [frame for frame in second.drain(1.0) if frame["type"] == "answer"]
    alex.close()


def test_an_agent_spot_checks_an_answer_the_small_tier_sent_with_one_click(
    stack: Stack, browser: Any, people: None, customers: list[ChatClient]
) -> None:
    customer = customers[0]
    question = "How do I reset my password?"
    customer.ask("c1", question)
    customer.wait_for(lambda frame: frame["type"] == "answer")
    page = agent_page(stack, browser, "/review/checks/", live=False)
    try:
        check = page.locator("[data-check]", has_text=question).first
        check.wait_for(timeout=15000)
        message_id = check.get_attribute("data-check")
        assert "Right:" in check.inner_text()
        page.screenshot(path=str(stack.logs / "spot-checks.png"), full_page=True)
        check.locator("[data-confirm-check]").click()
        page.wait_for_selector("text=the answer was right")
        assert page.locator(f"[data-check='{message_id}']").count() == 0
        assert page.inner_text("#checks-right").strip().endswith("%")
    finally:
        page.close()


def test_an_admin_retrains_compares_and_promotes_a_model_in_the_browser(
    stack: Stack, browser: Any, people: None
) -> None:
    from chatbot.small import model as small_model
    from chatbot.small import versions

    directory = stack.env["TANDEM_SMALL_MODEL_DIR"]
    serving = small_model.current_version(Path(directory))
    assert serving is not None
    admin = agent_page(stack, browser, "/model/", ADMIN, ADMIN_PASSWORD, live=False)
    try:
        admin.click("#train")
        # Trained in the background (a Celery task starts the training process); the page follows it.
        admin.wait_for_selector("tr[data-state='trained'] [data-promote]", timeout=180000)
        figures = admin.inner_text("tr[data-state='trained']")
        assert "held-out" in figures
        admin.screenshot(path=str(stack.logs / "small-model-trained.png"), full_page=True)
        admin.click("tr[data-state='trained'] [data-promote]")
        admin.wait_for_selector("text=serves now")
        promoted = small_model.current_version(Path(directory))
        assert promoted not in (None, serving)
        admin.click(f"tr[data-version='{serving}'] [data-roll-back]")
        admin.wait_for_selector("text=serves again")
        assert small_model.current_version(Path(directory)) == serving
    finally:
        versions.make_current(serving, Path(directory))
        admin.close()

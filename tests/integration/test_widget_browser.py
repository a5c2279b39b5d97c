"""Customers use the widget on the demo page, and agents the desk, in headless Chromium."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ChatClient, Stack, agent_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_a_customer_types_a_routine_question_and_sees_the_answer(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.http + "/")
    page.click(".tandem-launcher")
    page.fill("textarea.tandem-input", "How do I reset my password?")
    page.press("textarea.tandem-input", "Enter")
    answer = page.locator('.tandem-msg[data-kind="answer"][data-tier="small"]')
    answer.wait_for(timeout=15000)
    assert "password" in answer.inner_text().lower()
    assert page.locator('.tandem-msg[data-kind="customer"]').inner_text().startswith("How do I reset my password?")
    page.close()


def test_the_widget_shows_markup_as_text(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.http + "/")
    page.click(".tandem-launcher")
    hostile = '<img src=x onerror="document.body.dataset.pwned=1">'
    page.fill("textarea.tandem-input", hostile)
    page.press("textarea.tandem-input", "Enter")
    page.locator('.tandem-msg[data-kind="customer"].tandem-delivered').wait_for(timeout=15000)
    assert page.locator('.tandem-msg[data-kind="customer"]').first.inner_text().startswith(hostile)
    assert page.locator(".tandem-log img").count() == 0
    assert page.evaluate("document.body.dataset.pwned") is None
    page.close()


def test_a_customer_who_types_too_fast_is_told_kindly_and_nothing_is_lost(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.http + "/")
    page.click(".tandem-launcher")
    questions = [f"How do I reset my password? ({number})" for number in range(10)]
    for question in questions:
        page.fill("textarea.tandem-input", question)
        page.press("textarea.tandem-input", "Enter")
    # Flood control lets 8 through in 10 seconds; the widget says why the rest wait, shows no error…
    page.locator('.tandem-status[data-state="slow-down"]').wait_for(timeout=15000)
    assert "quickly" in page.locator(".tandem-status").inner_text()
    assert page.locator('.tandem-msg[data-kind="error"]').count() == 0
    page.screenshot(path=str(stack.logs / "widget-slow-down.png"))
    # …and sends them again by itself once it may.
    delivered = page.locator('.tandem-msg[data-kind="customer"].tandem-delivered')
    page.wait_for_function(
        "() => document.querySelectorAll('.tandem-msg[data-kind=\"customer\"].tandem-delivered').length === 10",
        timeout=30000,
    )
    assert [text.splitlines()[0] for text in delivered.all_inner_texts()] == questions
    page.locator('.tandem-status[data-state="slow-down"]').wait_for(state="hidden", timeout=15000)
    page.close()


def test_the_queue_shows_a_new_escalation_without_reloading(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = agent_page(stack, browser, "/review/")
    customer = ChatClient(stack)
    try:
        customer.ask("b1", "I want to speak to a human")
        customer.wait_for(lambda frame: frame["type"] == "escalated")
        row = f"tr[data-conversation='{customer.session['conversation']}']"
        page.wait_for_selector(row, timeout=15000)
        assert page.evaluate("window.sameLoad") is True
    finally:
        customer.close()
        page.close()


def test_a_conversation_page_updates_live_and_keeps_what_the_agent_is_typing(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    customer = ChatClient(stack)
    try:
        customer.ask("b2", "I want to speak to a human")
        customer.wait_for(lambda frame: frame["type"] == "escalated")
        page = agent_page(stack, browser, f"/review/{customer.session['conversation']}/")
        page.fill("#reply-text", "Half-written reply")
        customer.ask("b3", "Are you still there? My order number is 4417")
        page.wait_for_selector("text=My order number is 4417", timeout=15000)
        assert page.evaluate("window.sameLoad") is True
        assert page.input_value("#reply-text") == "Half-written reply"
        page.screenshot(path=str(stack.logs / "review-detail-live.png"), full_page=True)
        page.close()
    finally:
        customer.close()

"""A customer rates an answer, and then the whole conversation, in the widget in headless Chromium; the
ratings are stored, survive a fresh page, and show on the agent's desk."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, csrf_of

pytestmark = [pytest.mark.integration, pytest.mark.browser]

COMMENT = "The reset link expired before the email arrived."


def stored_ratings(stack: Stack, conversation: str) -> list[dict[str, Any]]:
    code = (
        "import json; from support.conversations.models import Rating; "
        f"print(json.dumps(list(Rating.objects.filter(conversation_id='{conversation}').order_by('created_at')"
        ".values('score', 'comment', 'tier', 'destination', 'message__client_id'))))"
    )
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


def test_a_visitor_gives_an_answer_a_thumbs_down_with_a_comment_and_rates_the_closed_chat(  # type: ignore[no-untyped-def]
    stack: Stack, browser, agent_http: httpx.Client
) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    page.goto(stack.http + "/")
    page.click(".tandem-launcher")
    page.fill("textarea.tandem-input", "How do I reset my password?")
    page.press("textarea.tandem-input", "Enter")
    answer = page.locator('.tandem-msg[data-kind="answer"][data-tier="small"]')
    answer.wait_for(timeout=15000)
    question_id = answer.get_attribute("data-reply-to")
    conversation = page.evaluate("window.TandemWidget.state.conversation")

    # Thumbs down: the comment box opens with the focus in it.
    rate_answer = answer.locator('[role="group"][aria-label="Rate this answer"]')
    thumbs_down = rate_answer.get_by_role("button", name="Not helpful")
    thumbs_down.click()
    assert thumbs_down.get_attribute("aria-pressed") == "true"
    comment = rate_answer.get_by_label("Tell us more (optional)")
    comment.wait_for(state="visible")
    assert comment.evaluate("element => element === document.activeElement")
    comment.fill(COMMENT)
    page.screenshot(path=str(stack.logs / "widget-rating-comment.png"))
    comment.press("Enter")
    rate_answer.get_by_text("Thanks for your feedback!").wait_for(timeout=10000)
    assert comment.is_hidden()
    assert stored_ratings(stack, conversation) == [
        {"score": -1, "comment": COMMENT, "tier": "small", "destination": "small", "message__client_id": question_id}
    ]

    # An agent closes the chat: the widget asks how it went, and a plain thumbs up is enough.
    detail = agent_http.get(f"/review/{conversation}/")
    closed = agent_http.post(f"/review/{conversation}/close/", data={"csrfmiddlewaretoken": csrf_of(detail.text)})
    assert closed.status_code == 302
    overall = page.locator('.tandem-msg[data-kind="rating"] [aria-label="Rate this conversation"]')
    overall.wait_for(timeout=15000)
    assert "How did we do?" in overall.inner_text()
    overall.get_by_role("button", name="Good", exact=True).click()
    overall.get_by_role("button", name="Send").click()
    overall.get_by_text("Thanks for your feedback!").wait_for(timeout=10000)
    page.screenshot(path=str(stack.logs / "widget-rating.png"))
    ratings = stored_ratings(stack, conversation)
    assert ratings[1] == {"score": 1, "comment": "", "tier": "small", "destination": "", "message__client_id": None}

    # A fresh page replays the chat and shows what was rated.
    page.reload()
    page.click(".tandem-launcher")
    replayed = page.locator('.tandem-msg[data-kind="answer"] .tandem-thumb[data-score="-1"][aria-pressed="true"]')
    replayed.wait_for(timeout=15000)
    page.locator('.tandem-msg[data-kind="rating"] .tandem-thumb[data-score="1"][aria-pressed="true"]').wait_for()
    assert page.locator('.tandem-msg[data-kind="rating"]').count() == 1
    assert page.locator('.tandem-msg[data-kind="error"]').count() == 0
    page.wait_for_timeout(400)  # the panel's opening animation
    page.screenshot(path=str(stack.logs / "widget-rating-replayed.png"))
    page.close()

    # The agent sees both on the conversation's page.
    desk = agent_http.get(f"/review/{conversation}/").text
    assert 'data-rating="-1"' in desk and COMMENT in desk
    assert 'data-conversation-rating="1"' in desk

"""The manager's console in headless Chromium against the real stack: customers' traffic shows in the
charts, the range and the step change, the intents table sorts and leads to the conversations, and a
CSV downloads with the same figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from tests.integration.conftest import ChatClient, Stack, agent_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MANAGER, MANAGER_PASSWORD = "mona", "mona-password-1"


@pytest.fixture(scope="module")
def manager(stack: Stack) -> None:
    stack.manage("create_agent", MANAGER, "--admin", "--password-stdin", stdin=MANAGER_PASSWORD + "\n")


@pytest.fixture
def traffic(stack: Stack) -> Iterator[None]:
    customer = ChatClient(stack)
    customer.ask("q1", "How do I reset my password?")
    customer.wait_for(lambda frame: frame["type"] == "answer")
    customer.ask("q2", "I'd like to talk to a person please")
    customer.wait_for(lambda frame: frame["type"] == "escalated")
    yield
    customer.close()


def test_a_manager_reads_the_console_changes_the_range_and_downloads_a_csv(
    stack: Stack, browser: Any, manager: None, traffic: None
) -> None:
    page = agent_page(stack, browser, "/console/", MANAGER, MANAGER_PASSWORD, live=False)
    try:
        # Five charts drawn by the vendored Chart.js (the page's CSP allows no inline script).
        page.wait_for_selector("body[data-charts-drawn='5']", state="attached")
        assert page.locator("canvas#chart-destinations").bounding_box()["height"] > 100  # type: ignore[index]
        page.screenshot(path=str(stack.logs / "console.png"), full_page=True)

        # The range: today only, hourly.
        today = date.today()
        page.fill("input[name=from]", (today - timedelta(days=1)).isoformat())
        page.fill("input[name=to]", today.isoformat())
        page.select_option("select[name=step]", "hour")
        page.click("#show-range")
        page.wait_for_selector("body[data-charts-drawn='5']", state="attached")
        assert f"{(today - timedelta(days=1)).isoformat()} to {today.isoformat()}" in page.inner_text("main")
        assert "hourly" in page.locator("select[name=step] option:checked").inner_text()
        figures = page.inner_text("section.card .figures")
        assert "customer messages" in figures

        # A CSV of the same range, downloaded by the browser.
        with page.expect_download() as downloading:
            page.click("[data-export='summary']")
        download = downloading.value
        assert download.suggested_filename.startswith("tandem-summary-")
        path = download.path()
        assert path is not None
        rows = dict(list(csv.reader(io.StringIO(path.read_text())))[1:])
        assert int(rows["messages"]) >= 2 and int(rows["destinations.people"]) >= 1

        # By intent: sorted by a click on a heading, and an intent leads to its conversations.
        page.click("text=By intent")
        page.wait_for_selector("table#intents")
        page.click("th a[data-sort='intent']")
        page.wait_for_selector("th a.sorted[data-sort='intent']")
        page.screenshot(path=str(stack.logs / "console-intents.png"), full_page=True)
        page.click("tr[data-intent='reset-password'] a")
        page.wait_for_selector("table#conversations tr[data-conversation]")
        page.screenshot(path=str(stack.logs / "console-conversations.png"), full_page=True)
        assert page.locator("table#conversations tr[data-conversation]").count() >= 1
    finally:
        page.close()

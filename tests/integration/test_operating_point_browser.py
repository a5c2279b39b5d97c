"""An admin chooses the small tier's operating point in headless Chromium against the real stack: a click
on the curve, and the live router answers by it at once; one click on the audit row reverts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.conftest import ChatClient, Stack, agent_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ADMIN, ADMIN_PASSWORD = "olive", "olive-password-1"
# Answered by the demo model, not with its highest confidence.
QUESTION = "has my parcel shipped yet"


@pytest.fixture(scope="module")
def admin(stack: Stack) -> None:
    stack.manage("create_agent", ADMIN, "--admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")


@pytest.fixture
def customer(stack: Stack) -> Iterator[ChatClient]:
    client = ChatClient(stack)
    yield client
    client.close()


@pytest.fixture
def no_operating_point_after(stack: Stack) -> Iterator[None]:
    yield
    # The model folder is shared with the other tests: never leave a point chosen there.
    (Path(stack.env["TANDEM_SMALL_MODEL_DIR"]) / "operating-point.json").unlink(missing_ok=True)


def routed(customer: ChatClient, client_id: str) -> dict[str, Any]:
    customer.ask(client_id, QUESTION)
    return customer.wait_for(lambda frame: frame["type"] in ("answer", "escalated") and frame.get("tier") != "large")


def test_an_admin_picks_a_point_on_the_curve_the_live_router_uses_it_and_a_click_reverts_it(
    stack: Stack, browser: Any, admin: None, customer: ChatClient, no_operating_point_after: None
) -> None:
    before = routed(customer, "op1")
    assert before["type"] == "answer" and before["tier"] == "small", before
    confidence = float(before["confidence"])

    page = agent_page(stack, browser, "/console/operating-point/", ADMIN, ADMIN_PASSWORD, live=False)
    try:
        page.wait_for_selector("body[data-chart-ready='true']", state="attached")
        assert "as trained" in page.inner_text("#now-serving")
        points = page.evaluate("JSON.parse(document.getElementById('curve-data').textContent).points")
        shown = [point for point in points if point["y"] is not None]
        drawn = page.evaluate("() => Chart.getChart('curve-chart').getDatasetMeta(0).data.map(p => [p.x, p.y])")

        def clear(i: int) -> bool:
            # A click on its centre reaches it before any other point (Chart.js picks the nearest).
            return all(
                (drawn[i][0] - other[0]) ** 2 + (drawn[i][1] - other[1]) ** 2 > 2**2
                for j, other in enumerate(drawn)
                if j != i
            )

        def picked(threshold: str) -> None:
            # Waited for: Chart.js handles a click on the chart in the next animation frame, not at once
            # (all its canvas events are throttled to frames), later still on a busy host.
            expect(page.locator("#pick-threshold")).to_have_value(threshold)
            expect(page.locator("#picked-summary")).to_contain_text(f"Threshold {threshold}:")
            expect(page.locator(f"#points tr.picked[data-threshold='{threshold}']")).to_have_count(1)

        # A click on a point of the chart picks it (points drawn on top of each other are one click: one
        # standing apart from the rest, above this question's confidence where one is).
        above = [i for i, point in enumerate(shown) if float(point["threshold"]) > confidence]
        assert above, f"no point on the curve above this question's confidence {confidence}"
        standing = [i for i in range(len(shown)) if clear(i)]
        assert standing, drawn
        index = next((i for i in above if i in standing), standing[0])
        x, y = drawn[index]
        # In view first: the chart's lower edge is near the window's, and a click outside it reaches nothing.
        page.locator("#curve-chart").scroll_into_view_if_needed()
        box = page.locator("#curve-chart").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        picked(shown[index]["threshold"])
        # The lowest point that this question's confidence does not reach, from its row in the table
        # (the way to a point the chart draws under another).
        target = shown[above[0]]["threshold"]
        page.click(f"#points tr[data-threshold='{target}'] button.pick")
        picked(target)
        page.fill("#pick-note", "Parcel questions were answered wrongly too often")
        page.click("#serve-point")
        page.wait_for_selector("text=The small tier answers at confidence")
        assert page.inner_text("#serving-threshold") == f"{float(target):.4f}"
        assert "chosen here" in page.inner_text("#now-serving")
        row = page.locator("#changes tr[data-change]").first
        assert ADMIN in row.inner_text() and "Parcel questions" in row.inner_text()
        page.screenshot(path=str(stack.logs / "operating-point.png"), full_page=True)

        # The live router uses it on the next message: the same question is escalated now.
        after = routed(customer, "op2")
        assert after["type"] == "escalated", after

        # One click on the audit row: the trained threshold serves again.
        row.locator("button.revert").click()
        page.wait_for_selector("text=Reverted:")
        assert "as trained" in page.inner_text("#now-serving")
        assert page.locator("#changes tr[data-change]").count() == 2
        page.screenshot(path=str(stack.logs / "operating-point-reverted.png"), full_page=True)
        again = routed(customer, "op3")
        assert again["type"] == "answer" and again["tier"] == "small", again
    finally:
        page.close()

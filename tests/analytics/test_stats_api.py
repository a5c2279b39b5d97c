from __future__ import annotations

import io
import json
from datetime import date
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from chatbot.policy import Thresholds
from support.analytics import views
from support.analytics.stats import compute_stats

pytestmark = pytest.mark.django_db
QUERY = {"from": "2024-03-10", "to": "2024-03-12"}


def _client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("persona", ["agent", "admin_user"])
def test_api_returns_the_stats_to_staff(traffic: None, persona: str, request: pytest.FixtureRequest) -> None:
    response = _client(request.getfixturevalue(persona)).get("/api/stats/", QUERY)
    assert response.status_code == 200
    body = response.json()
    assert body == compute_stats(date(2024, 3, 10), date(2024, 3, 12))
    assert body["messages"] == 6 and body["baseline_all_large_usd"] == 0.0063


def test_api_defaults_to_the_last_30_days(agent: User, prices: None) -> None:
    body = _client(agent).get("/api/stats/").json()
    assert (date.fromisoformat(body["to"]) - date.fromisoformat(body["from"])).days == 29


def test_api_refuses_anonymous_with_401(traffic: None) -> None:
    response = Client().get("/api/stats/", QUERY)
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


def test_api_refuses_non_staff_with_403(visitor: User) -> None:
    response = _client(visitor).get("/api/stats/", QUERY)
    assert response.status_code == 403
    assert "error" in response.json()


@pytest.mark.parametrize(
    "query", [{"from": "10/03/2024", "to": "2024-03-12"}, {"from": "2024-03-12", "to": "2024-03-10"}]
)
def test_api_rejects_bad_dates_with_400(agent: User, query: dict[str, str]) -> None:
    response = _client(agent).get("/api/stats/", query)
    assert response.status_code == 400
    assert response.json()["error"]


def test_api_is_read_only(agent: User) -> None:
    assert _client(agent).post("/api/stats/", QUERY).status_code == 405


META = {
    "version": "20240301-120000",
    "created_at": "2024-03-01T12:00:00+00:00",
    "examples": 412,
    "intents": 37,
    "metrics": {"holdout_accuracy": 0.9189},
}


def test_console_renders_for_staff(traffic: None, agent: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "current_meta", lambda: META)
    response = _client(agent).get("/console/", QUERY)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/api/stats/?from=2024-03-10&amp;to=2024-03-12"' in page  # the JSON link
    assert 'value="2024-03-10"' in page and 'value="2024-03-12"' in page
    for text in (
        "Small model",
        "40.0%",
        "20.0%",
        "66.7%",
        "low_confidence",
        "33.3%",
        "out_of_scope",
        "0.000030",
        "0.002100",
        "0.002130",
        "0.006300",
        "0.004170",
        "big-llm",
        "20240301-120000",
        "2024-03-01T12:00:00+00:00",
        "412",
        "37",
        "91.9%",
        f"{Thresholds.current().confidence:.3f}",
        f"{Thresholds.current().oos_similarity:.3f}",
    ):
        assert text in page, text
    # The figures for the charts are in the page (drawn by static/tandem/console.js, no inline styles).
    assert 'id="console-chart"' in page and "style=" not in page.split("<main>")[1]


def test_console_without_a_small_model(agent: User, prices: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "current_meta", lambda: None)
    response = _client(agent).get("/console/")
    assert response.status_code == 200
    assert "No small model is trained" in response.content.decode()


def test_console_shows_bad_dates(admin_user: User) -> None:
    response = _client(admin_user).get("/console/", {"from": "soon"})
    assert response.status_code == 400
    assert "must be a date in YYYY-MM-DD format" in response.content.decode()


@pytest.mark.parametrize("persona", [None, "visitor"])
def test_console_sends_others_to_the_login_page(persona: str | None, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(persona) if persona else None
    response = _client(user).get("/console/")
    assert response.status_code == 302
    assert response["Location"] == f"{django_settings.LOGIN_URL}?next=/console/"


def test_command_prints_the_same_json(traffic: None) -> None:
    out = io.StringIO()
    call_command("stats", "--from", "2024-03-10", "--to", "2024-03-12", stdout=out)
    text = out.getvalue()
    assert json.loads(text) == compute_stats(date(2024, 3, 10), date(2024, 3, 12))
    assert text.startswith('{\n  "from": "2024-03-10",')  # indent 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2024-13-01"], "'from' must be a date in YYYY-MM-DD format, got '2024-13-01'"),
        (["--from", "2024-03-12", "--to", "2024-03-10"], "is after"),
    ],
)
def test_command_rejects_bad_dates(db: None, args: list[str], message: str, settings: Any) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("stats", *args)

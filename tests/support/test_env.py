import pytest
from django.core.exceptions import ImproperlyConfigured

from support.env import database_from_url, envbool, envfloat, envint, envlist, envrates


def test_typed_helpers_read_good_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B", "yes")
    monkeypatch.setenv("I", "42")
    monkeypatch.setenv("F", "0.25")
    monkeypatch.setenv("L", "a, b,,c")
    assert envbool("B") is True and envint("I", 1) == 42 and envfloat("F", 0.0) == 0.25
    assert envlist("L") == ["a", "b", "c"]
    assert envint("UNSET_FOR_TEST", 7) == 7


@pytest.mark.parametrize(
    ("call", "value"),
    [
        (lambda: envbool("X"), "maybe"),
        (lambda: envint("X", 1), "ten"),
        (lambda: envint("X", 1, minimum=1), "0"),
        (lambda: envfloat("X", 0.5, minimum=0.0, maximum=1.0), "1.5"),
    ],
)
def test_typed_helpers_fail_loudly_on_bad_values(monkeypatch: pytest.MonkeyPatch, call, value: str) -> None:
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match="X"):
        call()


def test_database_urls() -> None:
    pg = database_from_url("postgres://tandem:s%40cret@db.example:5433/support?sslmode=require")
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    assert (pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "support",
        "tandem",
        "s@cret",
        "db.example",
        "5433",
    )
    assert pg["OPTIONS"] == {"sslmode": "require"}
    assert database_from_url("sqlite:////tmp/x.db")["NAME"] == "/tmp/x.db"
    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://x")


def test_rates_are_read_in_the_limits_notation_and_off_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R", "10 per 10 seconds; 60/hour")
    assert [(item.amount, item.get_expiry()) for item in envrates("R", "")] == [(10, 10), (60, 3600)]
    monkeypatch.setenv("R", "off")
    assert envrates("R", "5 per minute") == []
    monkeypatch.delenv("R")
    assert [item.amount for item in envrates("R", "5 per minute")] == [5]


def test_a_malformed_rate_stops_start_up_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R", "ten a minute")
    with pytest.raises(ImproperlyConfigured, match="R must be rates"):
        envrates("R", "")

"""Login throttling (django-axes): guessing an agent's password from one address is stopped."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def log_in(password: str, address: str, url: str = "/accounts/login/") -> int:
    client = Client(REMOTE_ADDR=address)
    return client.post(url, {"username": "agent", "password": password}).status_code


def test_five_wrong_passwords_lock_the_account_out_from_that_address_even_for_the_right_one(agent: User) -> None:
    agent.set_password("right-password")
    agent.save()
    assert [log_in(f"guess-{n}", "198.51.100.7") for n in range(4)] == [200] * 4  # the form again, with an error
    assert log_in("guess-4", "198.51.100.7") == 429
    assert log_in("right-password", "198.51.100.7") == 429
    # The agent, from their own address, still logs in.
    assert log_in("right-password", "192.0.2.20") == 302


def test_the_admin_sites_login_is_throttled_too(admin_user: User) -> None:
    client = Client(REMOTE_ADDR="198.51.100.8")
    codes = [
        client.post("/admin/login/", {"username": admin_user.username, "password": f"x{n}"}).status_code
        for n in range(6)
    ]
    assert codes[-1] == 429


@override_settings(TANDEM_CLIENT_IP_HEADER="X-Forwarded-For")
def test_behind_a_proxy_failures_count_against_the_clients_address_not_the_proxys(agent: User) -> None:
    for n in range(5):
        Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9").post(
            "/accounts/login/", {"username": "agent", "password": f"guess-{n}"}
        )
    locked = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert locked.post("/accounts/login/", {"username": "agent", "password": "x"}).status_code == 429
    other = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.30")
    assert other.post("/accounts/login/", {"username": "agent", "password": "x"}).status_code == 200

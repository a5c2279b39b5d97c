"""Which address flood control counts a client under."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from support.conversations.flood import client_address, request_address


def scope(*headers: tuple[bytes, bytes], peer: str = "192.0.2.7") -> dict[str, object]:
    return {"headers": list(headers), "client": (peer, 50000)}


def test_without_a_trusted_header_the_peer_address_counts_whatever_the_client_claims() -> None:
    assert client_address(scope((b"x-forwarded-for", b"198.51.100.1"))) == "192.0.2.7"


@override_settings(TANDEM_CLIENT_IP_HEADER="X-Forwarded-For")
def test_behind_a_proxy_the_address_the_proxy_appended_counts_not_one_the_client_wrote() -> None:
    # The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the address it saw.
    assert client_address(scope((b"x-forwarded-for", b"6.6.6.6, 198.51.100.1"))) == "198.51.100.1"


@override_settings(TANDEM_CLIENT_IP_HEADER="X-Real-IP")
def test_another_configured_header_is_read_as_is_and_a_missing_one_falls_back_to_the_peer() -> None:
    assert client_address(scope((b"x-real-ip", b"198.51.100.2"))) == "198.51.100.2"
    assert client_address(scope()) == "192.0.2.7"


@override_settings(TANDEM_CLIENT_IP_HEADER="X-Forwarded-For")
def test_an_http_request_yields_a_valid_ip_address_or_none() -> None:
    factory = RequestFactory()
    assert request_address(factory.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.1")) == "198.51.100.1"
    assert request_address(factory.get("/", HTTP_X_FORWARDED_FOR="not-an-address")) == "127.0.0.1"
    bare = factory.get("/")
    del bare.META["REMOTE_ADDR"]
    assert request_address(bare) is None


@pytest.mark.asyncio
async def test_one_address_has_at_most_two_messages_handled_at_once_and_others_do_not_wait_for_it() -> None:
    import asyncio

    from support.conversations import flood

    running: dict[str, int] = {"script": 0, "customer": 0}
    most = {"script": 0, "customer": 0}
    customer_waited: list[float] = []

    async def handle(address: str) -> None:
        started = asyncio.get_running_loop().time()
        async with flood.turn(address):
            if address == "customer":
                customer_waited.append(asyncio.get_running_loop().time() - started)
            running[address] += 1
            most[address] = max(most[address], running[address])
            await asyncio.sleep(0.05)
            running[address] -= 1

    burst = [asyncio.create_task(handle("script")) for _ in range(20)]
    await asyncio.sleep(0)
    await handle("customer")
    await asyncio.gather(*burst)
    assert most == {"script": flood.ADDRESS_IN_FLIGHT, "customer": 1}
    # The customer's message did not queue behind the script's burst.
    assert customer_waited[0] < 0.05
    # Nothing is kept for an address with no message in hand.
    assert flood._limiters().turns == {}

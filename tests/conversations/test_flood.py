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


def test_a_sockets_own_rate_counts_every_window_and_says_when_the_first_full_one_has_room() -> None:
    from limits import parse_many

    from support.conversations.flood import SocketRate

    items = list(parse_many("3 per 10 seconds; 5 per minute"))
    rate = SocketRate()
    assert [rate.hit(items, now=t) for t in (0.0, 1.0, 2.0)] == [None, None, None]
    # The 10-second window is full until the message sent at 0 s leaves it, at 10 s.
    assert rate.hit(items, now=0.5 + 2.0) == 8
    # A refused message does not count: once the first one leaves, there is room again.
    assert rate.hit(items, now=10.5) is None
    assert rate.hit(items, now=11.5) is None
    # Now the minute's window is full (5 messages), until the one at 0 s is a minute old.
    assert rate.hit(items, now=12.5) == 48
    assert rate.hit(items, now=60.5) is None


def test_a_socket_without_limits_is_never_refused() -> None:
    from support.conversations.flood import SocketRate

    rate = SocketRate()
    assert all(rate.hit([], now=0.0) is None for _ in range(1000))


@pytest.mark.asyncio
async def test_a_quiet_addresss_message_gets_the_next_place_before_a_busy_ones() -> None:
    import asyncio

    from support.conversations.flood import _Gate

    gate = _Gate(2)
    await gate.enter(quiet=True)
    await gate.enter(quiet=False)
    order: list[str] = []

    async def wait(name: str, quiet: bool) -> None:
        await gate.enter(quiet)
        order.append(name)

    burst = [asyncio.create_task(wait(f"script-{n}", quiet=False)) for n in range(3)]
    await asyncio.sleep(0)
    customer = asyncio.create_task(wait("customer", quiet=True))
    await asyncio.sleep(0)
    gate.leave()
    await asyncio.sleep(0)
    assert order == ["customer"]
    # The burst is served in its own order, one place at a time.
    gate.leave()
    gate.leave()
    await asyncio.sleep(0)
    assert order == ["customer", "script-0", "script-1"]
    # A waiter that gives up takes no place with it.
    burst[2].cancel()
    await asyncio.gather(burst[2], return_exceptions=True)
    for _ in range(4):
        gate.leave()
    assert gate.free == 4
    await asyncio.gather(customer, *burst[:2])


def test_a_socket_ignores_retry_after_past_the_strikes_and_a_message_that_gets_through_starts_them_again() -> None:
    from support.conversations.flood import STRIKES, SocketRate

    script = SocketRate()
    assert [script.ignores_retry_after() for _ in range(STRIKES + 2)] == [False] * STRIKES + [True, True]
    widget = SocketRate()
    for _ in range(20):
        assert not any(widget.ignores_retry_after() for _ in range(STRIKES // 2))
        widget.accepted()


def test_an_address_is_busy_after_a_few_messages_in_quick_succession_and_quiet_again_after_a_pause() -> None:
    from support.conversations.flood import BUSY_MESSAGES, BUSY_SECONDS, _limiters

    async def check() -> None:
        limits = _limiters()
        # A customer asking every few seconds is never busy.
        assert not any(limits.busy("customer", now=5.0 * n) for n in range(50))
        # A burst is, from its fifth or sixth message on, and is quiet again some seconds after it stops.
        burst = [limits.busy("script", now=0.01 * n) for n in range(10)]
        assert not any(burst[: int(BUSY_MESSAGES)]) and all(burst[int(BUSY_MESSAGES) + 1 :])
        assert not limits.busy("script", now=3 * BUSY_SECONDS)

    import asyncio

    asyncio.run(check())

"""Flood control for the customer's chat socket: how many messages, connections and new conversations a
socket or a client address may have, shared by every server process through Redis.

Rates per address are moving windows kept by the `limits` library (well kept, used by Flask-Limiter and
SlowAPI) in Redis, so every server process counts the same address together. A socket's own rate is a
moving window kept on the socket (`SocketRate`): `limits`' in-memory storage expires its entries from a
task that hops to a thread once per key every few milliseconds, which cost the server more than a
flood's frames themselves (py-spy, bench/README.md). Open connections per address are a Redis sorted set
of the sockets open now, each entry expiring on its own if a server process dies without removing it.

A limit reached answers `{"type":"error","code":"rate_limited","retry_after":<seconds>}` (docs/protocol.md).
When Redis cannot be reached the limits are not applied (logged): the chat keeps working.

The escalation budgets (large-model jobs per conversation, and queued in all) are counted in the
database, where the escalations are: `actions.over_large_model_budget`.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


_PREFIX = "tandem:flood"
# An open connection's entry lasts this long unless the socket sends something (which renews it): a
# server process that dies cannot leave an address locked out for longer.
CONNECTION_TTL_SECONDS = 3600
# A socket that keeps sending after it was told to wait (more than this many messages refused in a row:
# the widget sends what it has queued once, then waits retry_after; a burst of 120 is still answered
# refusal by refusal) is a script: it is closed, and its address may not open another for BLOCK_SECONDS,
# nor keep its other sockets in this process open. Refusing its handshake costs the server far less
# than answering each of its frames.
STRIKES = 120
BLOCK_SECONDS = 60
# A refused handshake (blocked address, too many connections or new conversations) is answered after
# this pause: a client that honours retry_after loses nothing by it, and a script reconnecting in a
# loop is held to one try a second per connection instead of as many as the server can refuse.
REFUSAL_DELAY_SECONDS = 1.0
# Messages of one address handled at once by one server process. Everything a message needs from the
# database goes through one thread per process, first come first served: an address that sends in
# bursts (a script with many sockets, each within its own limit) would queue hundreds of messages ahead
# of every other customer. Taking turns per address, a burst waits behind itself instead.
ADDRESS_IN_FLIGHT = 2
# Messages one server process handles at once (routing and database work), the rest waiting for a
# place. A message gets the next place before others when its address is quiet: no other message of
# it in hand, and fewer than BUSY_MESSAGES of it handled here within about BUSY_SECONDS (a decaying
# count). A customer asking one thing at a time then waits behind at most this many messages of a
# burst, not behind the whole burst (bench/abuse.py: the abusers' allowance of a minute, spent in the
# first seconds, had customers' p99 at 1-2 s).
MESSAGES_IN_HAND = 8
BUSY_MESSAGES = 4.0
BUSY_SECONDS = 10.0
# Redis connections flood control may hold at once per server process (each call holds one for well
# under a millisecond; more callers wait their turn).
REDIS_CONNECTIONS = 200


def _address(header_value: str | None, peer: str | None) -> str:
    if settings.TANDEM_CLIENT_IP_HEADER and header_value:
        last = header_value.split(",")[-1].strip()
        if last:
            return last[:64]
    return peer or "unknown"


def client_address(scope: dict[str, Any]) -> str:
    """The client's address: from TANDEM_CLIENT_IP_HEADER when the server is behind a reverse proxy that
    sets it (for X-Forwarded-For, the last address, the one the proxy itself appended), else the peer."""
    header = settings.TANDEM_CLIENT_IP_HEADER
    value = None
    if header:
        wanted = header.lower().encode("latin-1")
        values = [value for name, value in scope.get("headers", []) if name.lower() == wanted]
        value = values[-1].decode("latin-1") if values else None
    client = scope.get("client")
    return _address(value, str(client[0]) if client else None)


def request_address(request: HttpRequest) -> str | None:
    """The same for an HTTP request (login throttling counts failures by it, and stores it in an IP
    address column): None when neither the header nor the peer holds a valid address."""
    header = settings.TANDEM_CLIENT_IP_HEADER
    meta_key = "HTTP_" + header.upper().replace("-", "_") if header else ""
    for candidate in (
        _address(request.META.get(meta_key) if meta_key else None, None),
        request.META.get("REMOTE_ADDR"),
    ):
        try:
            return str(ipaddress.ip_address(str(candidate).strip()))
        except ValueError:
            continue
    return None


class SocketRate:
    """One socket's moving windows (TANDEM_LIMIT_SOCKET_MESSAGES), kept on the socket itself: it needs
    neither Redis nor a lock, and goes when the socket does."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        # Messages refused in a row.
        self.refused = 0

    def ignores_retry_after(self) -> bool:
        """Count a refused message: True once this socket has gone on sending regardless (STRIKES)."""
        self.refused += 1
        return self.refused > STRIKES

    def accepted(self) -> None:
        """A message of this socket got through: the count of refusals in a row starts again."""
        self.refused = 0

    def hit(self, items: Sequence[RateLimitItem], now: float | None = None) -> int | None:
        """Count one more message; None if every window had room (then it counts), else the seconds
        until the first full window has room (then it does not count)."""
        if not items:
            return None
        now = time.monotonic() if now is None else now
        longest = max(item.get_expiry() for item in items)
        times = self._times
        while times and times[0] <= now - longest:
            times.popleft()
        for item in items:
            inside = len(times) - bisect.bisect_right(times, now - item.get_expiry())
            if inside >= item.amount:
                # Room again once the oldest message that fills this window leaves it.
                leaves = times[len(times) - item.amount] + item.get_expiry()
                return max(1, math.ceil(leaves - now))
        times.append(now)
        return None


@dataclass
class _Limiters:
    shared: MovingWindowRateLimiter
    redis: Redis
    # Redis could not be reached: limits are skipped until this time, then tried again.
    skip_until: float = 0.0
    sockets: dict[str, float] = field(default_factory=dict)
    # Addresses blocked for ignoring retry_after, as this process knows them: monotonic time they end.
    blocked: dict[str, float] = field(default_factory=dict)
    # Per address with messages being handled: its turns, and how many messages hold or wait for one.
    turns: dict[str, _Turns] = field(default_factory=dict)
    gate: _Gate = field(default_factory=lambda: _Gate(MESSAGES_IN_HAND))
    # Per address: its decaying count of messages handled here, and when it was last counted; past
    # recent_limit entries, the ones decayed to nothing are forgotten.
    recent: dict[str, tuple[float, float]] = field(default_factory=dict)
    recent_limit: int = 4096

    def busy(self, address: str, now: float) -> bool:
        """Count one more message of `address`: whether it was busy already (see BUSY_MESSAGES)."""
        half_life = BUSY_SECONDS / 2
        count, then = self.recent.get(address, (0.0, now))
        count *= 0.5 ** ((now - then) / half_life)
        self.recent[address] = (count + 1, now)
        if len(self.recent) > self.recent_limit:
            self.recent = {
                key: (value, at)
                for key, (value, at) in self.recent.items()
                if value * 0.5 ** ((now - at) / half_life) > 0.1
            }
            # With that many addresses all active, the next clean-up waits until there are twice as
            # many: never a walk over every address for each message.
            self.recent_limit = max(4096, 2 * len(self.recent))
        return count >= BUSY_MESSAGES


@dataclass
class _Turns:
    semaphore: asyncio.Semaphore
    users: int = 0
    # Of those, how many hold or wait for a place at the gate.
    at_gate: int = 0


class _Gate:
    """MESSAGES_IN_HAND places, handed on in order of arrival, but to messages of quiet addresses
    before the others."""

    def __init__(self, places: int) -> None:
        self.free = places
        self.first: deque[asyncio.Future[None]] = deque()
        self.others: deque[asyncio.Future[None]] = deque()

    async def enter(self, quiet: bool) -> None:
        if self.free > 0:
            self.free -= 1
            return
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self.first if quiet else self.others
        queue.append(place)
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.leave()  # handed a place just as it was cancelled: hand it on
            else:
                queue.remove(place)
            raise

    def leave(self) -> None:
        for queue in (self.first, self.others):
            while queue:
                place = queue.popleft()
                if not place.done():
                    place.set_result(None)
                    return
        self.free += 1


_per_loop: dict[asyncio.AbstractEventLoop, _Limiters] = {}


def _limiters() -> _Limiters:
    loop = asyncio.get_running_loop()
    found = _per_loop.get(loop)
    if found is None:
        url = settings.REDIS_URL
        # One pool for both clients, that makes a burst wait for a free connection: redis-py's default
        # pool raises "Too many connections" instead, which switched flood control off for 10 s at a
        # time when hundreds of sockets sent at once (bench/abuse.py), just when it was needed.
        pool = BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS, timeout=5, socket_timeout=5)
        # `connection_pool` is a documented option of RedisStorage that its type hints leave out.
        storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            key_prefix=_PREFIX,
            connection_pool=pool,  # type: ignore[arg-type]
        )
        found = _per_loop[loop] = _Limiters(
            shared=MovingWindowRateLimiter(storage),
            redis=Redis(connection_pool=pool),
        )
    return found


def _retry_after(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


async def _hit(limiter: MovingWindowRateLimiter, items: list[RateLimitItem], key: str) -> int | None:
    """Count one more against each window in turn; the seconds to wait at the first that is full (a full
    window counts nothing; the ones before it have counted this one, which only errs on the strict side).
    One Redis call a window on the way through, a second only when refusing."""
    for item in items:
        if not await limiter.hit(item, key):
            stats = await limiter.get_window_stats(item, key)
            return _retry_after(stats.reset_time)
    return None


async def _guarded(limits: _Limiters, check: Callable[[], Awaitable[Any]]) -> Any:
    if time.monotonic() < limits.skip_until:
        return None
    try:
        return await check()
    except (RedisError, OSError):
        pass
    try:
        # Once more: after Redis restarts, each connection kept in the pool fails once, and the pool
        # replaces it. (A count the failed try made is then counted twice: the strict side.)
        return await check()
    except (RedisError, OSError) as error:
        # Flood control must not take the chat down with it: skip it for a while and say so.
        logger.warning("Flood control is off for 10 s: Redis failed (%s)", error)
        limits.skip_until = time.monotonic() + 10
        return None


async def message_allowed(socket: SocketRate, address: str) -> int | None:
    """None if a message from this socket and address may be handled, else the seconds to wait."""
    waited = socket.hit(settings.TANDEM_LIMIT_SOCKET_MESSAGES)
    if waited is not None:
        return waited
    limits = _limiters()
    items = settings.TANDEM_LIMIT_ADDRESS_MESSAGES
    waited = await _guarded(limits, lambda: _hit(limits.shared, items, f"messages:{address}"))
    return int(waited) if waited is not None else None


async def escalation_allowed(address: str) -> bool:
    """Whether this address may start another large-model job (TANDEM_LIMIT_ADDRESS_ESCALATIONS)."""
    limits = _limiters()
    items = settings.TANDEM_LIMIT_ADDRESS_ESCALATIONS
    return await _guarded(limits, lambda: _hit(limits.shared, items, f"escalations:{address}")) is None


async def conversation_allowed(address: str) -> int | None:
    """None if this address may start another conversation now, else the seconds to wait."""
    limits = _limiters()
    items = settings.TANDEM_LIMIT_ADDRESS_CONVERSATIONS
    waited = await _guarded(limits, lambda: _hit(limits.shared, items, f"conversations:{address}"))
    return int(waited) if waited is not None else None


async def connection_opened(socket: str, address: str) -> int | None:
    """Count a new connection from `address`; None if it may stay open, else the seconds to wait."""
    limits = _limiters()
    waited = await _guarded(limits, lambda: _open(limits.redis, socket, address))
    return int(waited) if waited is not None else None


async def _open(redis: Redis, socket: str, address: str) -> int | None:
    key = f"{_PREFIX}:connections:{address}"
    now = time.time()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, 0, now)
        pipe.zadd(key, {socket: now + CONNECTION_TTL_SECONDS})
        pipe.zcard(key)
        pipe.expire(key, CONNECTION_TTL_SECONDS)
        _, _, count, _ = await pipe.execute()
    if count <= settings.TANDEM_LIMIT_ADDRESS_CONNECTIONS:
        return None
    await redis.zrem(key, socket)
    return 10


async def connection_used(socket: str, address: str) -> None:
    """The socket is still in use: its entry lives another CONNECTION_TTL_SECONDS (at most once a minute)."""
    limits = _limiters()
    now = time.time()
    if now - limits.sockets.get(socket, 0.0) < 60:
        return
    limits.sockets[socket] = now
    key = f"{_PREFIX}:connections:{address}"
    await _guarded(limits, lambda: limits.redis.zadd(key, {socket: now + CONNECTION_TTL_SECONDS}, xx=True))


async def connection_closed(socket: str, address: str) -> None:
    limits = _limiters()
    limits.sockets.pop(socket, None)
    await _guarded(limits, lambda: limits.redis.zrem(f"{_PREFIX}:connections:{address}", socket))


async def block_address(address: str, seconds: int = BLOCK_SECONDS) -> None:
    """Refuse new chat sockets from `address` for `seconds`, in every process."""
    limits = _limiters()
    seconds = max(1, seconds)
    limits.blocked[address] = time.monotonic() + seconds
    await _guarded(limits, lambda: limits.redis.set(f"{_PREFIX}:blocked:{address}", 1, ex=seconds))


def blocked_here(address: str) -> bool:
    """Whether this process blocked `address`, or saw it blocked, and the block still runs (no Redis:
    asked for every frame). A block that has run out is forgotten."""
    blocked = _limiters().blocked
    until = blocked.get(address)
    if until is None:
        return False
    if time.monotonic() < until:
        return True
    del blocked[address]
    return False


async def address_blocked(address: str) -> bool:
    """Whether `address` is blocked for ignoring retry_after. A block this process knows of is answered
    without Redis: a blocked script reconnecting in a loop costs one dictionary lookup a try."""
    if blocked_here(address):
        return True
    limits = _limiters()
    ttl = await _guarded(limits, lambda: limits.redis.ttl(f"{_PREFIX}:blocked:{address}"))
    if ttl is not None and ttl > 0:
        limits.blocked[address] = time.monotonic() + ttl
        return True
    return False


@asynccontextmanager
async def turn(address: str) -> AsyncIterator[None]:
    """Handle one message of `address` when it is its turn: at most ADDRESS_IN_FLIGHT of an address at
    once, and MESSAGES_IN_HAND in all, a quiet address's message before a busy one's."""
    limits = _limiters()
    turns = limits.turns.get(address)
    if turns is None:
        turns = limits.turns[address] = _Turns(asyncio.Semaphore(ADDRESS_IN_FLIGHT))
    turns.users += 1
    try:
        async with turns.semaphore:
            turns.at_gate += 1
            try:
                busy = limits.busy(address, time.monotonic())
                await limits.gate.enter(quiet=turns.at_gate == 1 and not busy)
                try:
                    yield
                finally:
                    limits.gate.leave()
            finally:
                turns.at_gate -= 1
    finally:
        turns.users -= 1
        if not turns.users:
            del limits.turns[address]

"""A circuit breaker around the large-model back end: after `failures` failed calls in a row it is not
called for `reset_seconds`, then one call tries it again (pybreaker, a small, well-kept implementation
of the pattern). Its state lives in Redis, so every worker and server process agrees on it: a server
process routes questions to people while the breaker is open instead of queuing them for a back end
that is down.

Only LLMError counts as a failure: an answer the output guard refused came from a working back end.
Without Redis the breaker stays closed (calls go through), as flood control does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pybreaker
import redis

from .base import LLMError

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The breaker opened (now, or earlier and its pause has not passed): the back end was not called.
BreakerOpen = pybreaker.CircuitBreakerError


class LargeModelBreaker:
    def __init__(self, redis_url: str, failures: int, reset_seconds: float, namespace: str = "tandem:llm") -> None:
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.namespace = namespace
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    @property
    def enabled(self) -> bool:
        return self.failures > 0

    def _breaker(self) -> pybreaker.CircuitBreaker:
        # One pybreaker object per call: pybreaker holds its lock for the whole call, which would let a
        # worker's threads call the back end only one at a time. The state is shared through Redis anyway.
        try:
            storage: pybreaker.CircuitBreakerStorage = pybreaker.CircuitRedisStorage(
                pybreaker.STATE_CLOSED, self._redis, namespace=self.namespace
            )
        except redis.RedisError:
            logger.warning("Redis is unavailable: the large model's circuit breaker is closed for this call")
            storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        return pybreaker.CircuitBreaker(
            fail_max=self.failures,
            reset_timeout=self.reset_seconds,
            exclude=[lambda error: not isinstance(error, LLMError)],
            state_storage=storage,
            name="large model",
            # The call that trips the breaker raises its own LLMError (and is retried as usual).
            throw_new_error_on_trip=False,
        )

    def call(self, func: Callable[..., T], *args: object, **kwargs: object) -> T:
        """func(*args, **kwargs) through the breaker; BreakerOpen without calling it while open."""
        if not self.enabled:
            return func(*args, **kwargs)
        return self._breaker().call(func, *args, **kwargs)

    def is_open(self) -> bool:
        """Whether a call now would be refused without trying the back end."""
        if not self.enabled:
            return False
        try:
            state, opened_at = self._redis.mget(
                f"{self.namespace}:pybreaker:state", f"{self.namespace}:pybreaker:opened_at"
            )
        except redis.RedisError:
            return False
        if state != pybreaker.STATE_OPEN.encode() or not opened_at:
            return False
        opened = datetime.fromtimestamp(int(opened_at), UTC)
        return datetime.now(UTC) < opened + timedelta(seconds=self.reset_seconds)

    def reset(self) -> None:
        """Close the breaker (tests; an operator who fixed the back end)."""
        try:
            self._redis.delete(*(f"{self.namespace}:pybreaker:{key}" for key in _KEYS))
        except redis.RedisError:
            logger.warning("Redis is unavailable: the circuit breaker could not be reset")


_KEYS = ("state", "fail_counter", "success_counter", "opened_at")
_breaker: LargeModelBreaker | None = None
_lock = threading.Lock()


def get_breaker() -> LargeModelBreaker:
    """The process's breaker, from TANDEM_LLM_BREAKER_FAILURES / TANDEM_LLM_BREAKER_SECONDS and REDIS_URL."""
    global _breaker
    with _lock:
        if _breaker is None:
            from django.conf import settings

            _breaker = LargeModelBreaker(
                settings.REDIS_URL, settings.TANDEM_LLM_BREAKER_FAILURES, settings.TANDEM_LLM_BREAKER_SECONDS
            )
        return _breaker


def forget_breaker() -> None:
    """Build the breaker anew from the settings on next use (tests change them)."""
    global _breaker
    with _lock:
        _breaker = None

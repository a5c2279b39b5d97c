"""Typed readers for settings that come from the environment.

Each helper fails loudly on a malformed value: a typo in a deployment's environment should stop the
process at start-up, not surface later as odd behaviour.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from limits import RateLimitItem, parse_many

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def envfloat(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be within [{minimum}, {maximum}], got {value}")
    return value


def envoptfloat(name: str, *, minimum: float | None = None, maximum: float | None = None) -> float | None:
    """A number, or None when the variable is unset or empty."""
    if not os.environ.get(name, "").strip():
        return None
    return envfloat(name, 0.0, minimum=minimum, maximum=maximum)


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def envrates(name: str, default: str) -> list[RateLimitItem]:
    """Rate limits such as "10 per 10 seconds; 60 per hour" (the `limits` library's notation); "off" or
    empty for none."""
    raw = os.environ.get(name, default).strip()
    if raw.lower() in {"", "off", "none"}:
        return []
    try:
        return list(parse_many(raw))
    except ValueError:
        raise ImproperlyConfigured(
            f'{name} must be rates such as "10 per 10 seconds; 60 per hour" (or "off"), got {raw!r}'
        ) from None


def database_from_url(url: str) -> dict[str, object]:
    """Django DATABASES entry for a postgres:// or sqlite:/// URL."""
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as dj-database-url reads them.
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        return sqlite_database(path)
    raise ImproperlyConfigured(f"DATABASE_URL must start with postgres:// or sqlite:///, got {url!r}")


# About 40 MB of write-ahead log before a connection checkpoints it by itself; in serving processes a
# background thread keeps the log far smaller (support.sqlite_wal).
SQLITE_AUTOCHECKPOINT_PAGES = 10_000


def sqlite_database(path: str) -> dict[str, object]:
    return {
        # Django's SQLite back end, waiting for the write lock in short steps (support/sqlite/base.py).
        "ENGINE": "support.sqlite",
        "NAME": path,
        # The web server and the Celery worker write to the same file: take the write lock at BEGIN
        # (no deadlock-prone lock upgrades), wait for it instead of failing, and let readers run
        # beside the writer (WAL).
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            # The log is checkpointed by a background thread in serving processes (support.sqlite_wal);
            # every connection still does it itself past SQLITE_AUTOCHECKPOINT_PAGES.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES};",
        },
        # Kept open: Channels closes a connection past its age around every database call, and opening
        # one (with the PRAGMAs above, and reading the schema again) cost the chat socket ~1.6 ms a
        # message - most of its database time.
        "CONN_MAX_AGE": None,
        "TEST": {"NAME": os.environ.get("TANDEM_TEST_SQLITE", "")} if os.environ.get("TANDEM_TEST_SQLITE") else {},
    }

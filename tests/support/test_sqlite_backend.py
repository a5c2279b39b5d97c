"""The SQLite back end waits for the write lock in short steps, and gives up at its timeout."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.db.utils import ConnectionHandler, OperationalError

from support.env import sqlite_database


@pytest.fixture(autouse=True)
def own_database_files(django_db_blocker: Any) -> Any:
    # These tests open SQLite files of their own, not the test database.
    with django_db_blocker.unblock():
        yield


def in_a_thread_of_its_own(test: Callable[[], None]) -> None:
    """Run `test` in a fresh thread, as the server's database thread runs: after the browser tests, the
    main thread may still have an event loop running, and Django refuses database calls there."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(test).result()


def connection_to(path: Path, timeout: float) -> Any:
    database = sqlite_database(str(path))
    database["OPTIONS"]["timeout"] = timeout  # type: ignore[index]
    handler = ConnectionHandler({"default": database})
    connection = handler["default"]
    connection.ensure_connection()
    return connection


def hold_the_write_lock(path: Path, seconds: float) -> tuple[threading.Thread, list[float]]:
    """Another writer: holds the lock for `seconds`; the list gets the moment it let go."""
    released: list[float] = []
    holding = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        holding.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        released.append(time.monotonic())
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(5)
    return thread, released


def test_a_writer_gets_the_lock_within_milliseconds_of_its_release(tmp_path: Path) -> None:
    in_a_thread_of_its_own(lambda: gets_the_lock_soon(tmp_path / "db.sqlite3"))


def gets_the_lock_soon(path: Path) -> None:
    connection = connection_to(path, timeout=10)
    # SQLite's own handler would be sleeping at this point (its sleeps add up to 178 ms, then 228 ms).
    thread, released = hold_the_write_lock(path, 0.18)
    connection._start_transaction_under_autocommit()
    began = time.monotonic()
    thread.join()
    assert began - released[0] < 0.025
    connection.connection.execute("COMMIT")
    # Every other statement still waits with SQLite's own handler, for the configured time.
    assert connection.connection.execute("PRAGMA busy_timeout").fetchone() == (10000,)
    connection.close()


def test_a_writer_gives_up_at_its_timeout_with_the_database_locked_error(tmp_path: Path) -> None:
    in_a_thread_of_its_own(lambda: gives_up_at_the_timeout(tmp_path / "db.sqlite3"))


def gives_up_at_the_timeout(path: Path) -> None:
    connection = connection_to(path, timeout=0.3)
    thread, _ = hold_the_write_lock(path, 1.0)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="locked"):
        connection._start_transaction_under_autocommit()
    assert 0.3 <= time.monotonic() - started < 0.6
    assert connection.connection.execute("PRAGMA busy_timeout").fetchone() == (300,)
    thread.join()
    connection.close()

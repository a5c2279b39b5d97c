"""The background checkpoint of SQLite's write-ahead log."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from support import sqlite_wal
from support.env import SQLITE_AUTOCHECKPOINT_PAGES


def _database_with_log(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(2000)])
    connection.commit()
    return connection


def test_a_checkpoint_copies_the_log_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    writer = _database_with_log(path)
    size_before = path.stat().st_size
    busy, log_pages, copied = sqlite_wal.checkpoint(sqlite3.connect(path))
    assert busy == 0 and log_pages > 100 and copied == log_pages
    assert path.stat().st_size > size_before
    writer.close()


def test_the_thread_checkpoints_an_sqlite_database_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "served.sqlite3"
    writer = _database_with_log(path)
    size_before = path.stat().st_size
    stop = sqlite_wal.start_checkpointer({"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}, interval=0.05)
    assert stop is not None
    try:
        deadline = time.monotonic() + 10
        while path.stat().st_size == size_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > size_before, "the log was never copied into the database file"
    finally:
        stop.set()
        writer.close()


def test_nothing_to_checkpoint_on_postgresql_or_in_memory() -> None:
    assert sqlite_wal.start_checkpointer({"ENGINE": "django.db.backends.postgresql", "NAME": "tandem"}) is None
    assert sqlite_wal.start_checkpointer({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}) is None

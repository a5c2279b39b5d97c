"""Django's SQLite back end, waiting for the write lock in short steps of its own.

Every writer takes SQLite's one write lock at BEGIN IMMEDIATE (support.env.sqlite_database). SQLite's
own busy handler waits for it in growing sleeps (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms ...),
so a writer that found the lock taken a few times sleeps on long after it was released, while
newcomers take it first: with the two server processes and the Celery workers writing at once, a few
customers' messages waited seconds (bench/abuse.py). Here BEGIN IMMEDIATE is tried again every
fraction of a millisecond to 2 ms, up to the configured timeout; every other statement keeps SQLite's
handler (timeout), which only an autocommit write outside a transaction ever needs.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from django.db.backends.sqlite3 import base

# First pause after a refused BEGIN, and the longest; each pause doubles the one before.
FIRST_PAUSE_SECONDS = 0.0002
LONGEST_PAUSE_SECONDS = 0.002


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        self._lock_timeout = float(conn_params.get("timeout", 5.0))
        return connection

    def _start_transaction_under_autocommit(self) -> None:
        # Django's OPTIONS["transaction_mode"] (IMMEDIATE here), None for a plain BEGIN.
        mode = getattr(self, "transaction_mode", None)
        begin = f"BEGIN {mode}" if mode else "BEGIN"
        connection = self.connection
        timeout = getattr(self, "_lock_timeout", 5.0)
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + timeout
            pause = FIRST_PAUSE_SECONDS
            while True:
                try:
                    connection.execute(begin)
                    return
                except sqlite3.OperationalError as error:
                    # Only a lock held elsewhere is waited for.
                    busy = error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                    if not busy or time.monotonic() >= deadline:
                        # As Django's own cursor raises it: django.db.OperationalError.
                        with self.wrap_database_errors:
                            raise
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")

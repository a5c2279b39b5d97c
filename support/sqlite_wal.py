"""Checkpointing SQLite's write-ahead log in the background, off the chat's hot path.

In WAL mode every commit appends to the log, and by default the commit that takes the log past 1,000
pages also copies it back into the database file and syncs it: a routine answer's database work had a
p99 of 6.9-9.6 ms that way, against 3.6-4.3 ms with this thread (bench/message_store.py, 6,000 calls,
three runs each; medians 2.2 against 2.05 ms). Every connection's automatic threshold is raised
(support.env.SQLITE_AUTOCHECKPOINT_PAGES) and serving processes run passive checkpoints
from a thread of their own instead; a passive checkpoint never waits for, or blocks, the writers. In
other processes (the Celery worker, management commands) the raised threshold bounds the log's size.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)
CHECKPOINT_SECONDS = 1.0
SQLITE_ENGINES = ("django.db.backends.sqlite3", "support.sqlite")
_lock = threading.Lock()
# Set to stop the running thread.
_running: threading.Event | None = None


def start_checkpointer(
    database: Mapping[str, Any] | None = None, interval: float = CHECKPOINT_SECONDS
) -> threading.Event | None:
    """Start the checkpoint thread, once per process, when the database (default: Django's default one)
    is an SQLite file. Returns an event that stops the thread, or None when there is nothing to do."""
    global _running
    database = database or settings.DATABASES["default"]
    if database["ENGINE"] not in SQLITE_ENGINES or str(database["NAME"]) in ("", ":memory:"):
        return None
    with _lock:
        if _running is None or _running.is_set():  # none yet, or the last one was stopped
            _running = threading.Event()
            arguments = (str(database["NAME"]), interval, _running)
            threading.Thread(target=_checkpoint_forever, args=arguments, name="sqlite-checkpoint", daemon=True).start()
        return _running


def checkpoint(connection: sqlite3.Connection) -> tuple[int, int, int]:
    """One passive checkpoint: (busy, pages in the log, pages copied into the database)."""
    busy, log_pages, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(log_pages), int(copied)


def _checkpoint_forever(path: str, interval: float, stop: threading.Event) -> None:
    connection: sqlite3.Connection | None = None
    while not stop.wait(interval):
        try:
            if connection is None:
                connection = sqlite3.connect(path, timeout=5, check_same_thread=False)
            checkpoint(connection)
        except sqlite3.Error as error:
            # Not fatal: connections still checkpoint by themselves past SQLITE_AUTOCHECKPOINT_PAGES.
            logger.warning("SQLite checkpoint failed: %s", error)
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()

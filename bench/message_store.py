"""The database's share of a routine answer: storing the question, the answer and both events.

    .venv/bin/python bench/message_store.py [--messages 2000]

Calls the action the chat socket calls (`post_customer_message`, with the small model's prediction
given, as the server passes it) on a fresh SQLite database in a temporary folder (its log checkpointed by
a background thread, as in the server; TANDEM_BENCH_NO_CHECKPOINTER=1 leaves that to SQLite), or on
DATABASE_URL's database when set, and prints the SQL statements of one routine answer and the median, p90 and p99 time
of a call. Sends to the channel layer are left out (they leave from another thread after commit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
os.environ.setdefault("TANDEM_DATA_DIR", tempfile.mkdtemp(prefix="tandem-bench-"))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from chatbot.policy import Reply, Route  # noqa: E402
from chatbot.routes import Destination  # noqa: E402
from chatbot.routing import Routed  # noqa: E402
from chatbot.small.model import Prediction  # noqa: E402
from support.conversations import actions, broadcast  # noqa: E402
from support.knowledge.models import Article  # noqa: E402
from support.sqlite_wal import start_checkpointer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if os.environ.get("TANDEM_BENCH_NO_CHECKPOINTER") != "1":
        start_checkpointer()  # as the server does (SQLite only)
    slug = "bench-card-arrival"
    Article.objects.update_or_create(slug=slug, defaults={"title": "Card arrival", "answer": "In 3-5 working days."})
    broadcast.send_to_conversation = lambda *frames, **options: None  # type: ignore[assignment]
    session = actions.open_session(None)
    prediction = Prediction(slug, 0.999, 0.9, 12)
    # The router's verdict for a routine question, as the chat socket passes it.
    routed = Routed(Route(Destination.SMALL, None, (Reply(slug, 0.999),)), prediction, "en", None, 12)
    question = "When will my new card arrive?"

    def post(client_id: str) -> None:
        posted = actions.post_customer_message(session.conversation_id, client_id, question, routed, "bench")
        assert posted.events[-1]["type"] == "answer", posted.events

    for number in range(50):  # warm: connection, statement caches, the article's cached answer
        post(f"warm-{number}")
    with CaptureQueriesContext(connection) as queries:
        post("counted")
    print(f"{len(queries.captured_queries)} SQL statements for one routine answer ({connection.vendor}):")
    for query in queries.captured_queries:
        print("   ", query["sql"][:100])
    timings = []
    for number in range(args.messages):
        started = time.perf_counter()
        post(f"m-{number}")
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(
        f"post_customer_message, {args.messages} calls: median {statistics.median(timings):.2f} ms, "
        f"p90 {timings[int(len(timings) * 0.9)]:.2f} ms, p99 {timings[int(len(timings) * 0.99)]:.2f} ms"
    )


if __name__ == "__main__":
    main()

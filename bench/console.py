"""The manager's console at scale (issue 12): every console page and CSV export for a 30-day range, and
the operators' /metrics, timed on a database seeded with realistic synthetic traffic (`manage.py seed_traffic`).

    .venv/bin/python bench/console.py [--messages 1000000] [--days 180] [--requests 20] [--data DIR]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tandem_bench_console .venv/bin/python bench/console.py

The database (SQLite in --data, default var/bench-console/, or DATABASE_URL's PostgreSQL database, made
if missing) is seeded once up to --messages customer messages over --days days ending now and kept for
later runs. Each URL is requested once to warm up, then --requests times through Django's test client
in this process (the server's whole request path: middleware, views, templates, the database; no
network, no ASGI server; after a first round of every URL, `gc.freeze()` as the server calls it once
loaded), reading the whole response (CSV exports stream). Two passes: "quiet" (no new
traffic) and "live" (one new customer message, with its answer, written before each request, so the
current hour's rollups are stale and the request rebuilds them, as under live traffic). Prints p50,
p95 and max in milliseconds per URL and pass, and whether p95 is within the 200 ms target.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_MS = 200.0


def prepare_environment(data: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
    os.environ["HF_HUB_OFFLINE"] = "1"
    if "DATABASE_URL" not in os.environ:
        data.mkdir(parents=True, exist_ok=True)
        os.environ["TANDEM_DATA_DIR"] = str(data)
    else:
        ensure_postgres_database(os.environ["DATABASE_URL"])


def ensure_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def percentile95(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def host() -> str:
    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench-console")
    args = parser.parse_args()
    prepare_environment(args.data)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import Resolver404, resolve
    from django.utils import timezone

    from support.analytics import rollups, seed, stats
    from support.conversations.models import Conversation, Message, Role, Tier
    from support.review.roles import make_agent

    call_command("migrate", verbosity=0)
    have = Message.objects.filter(role=Role.CUSTOMER).count()
    if have < args.messages:
        started = time.monotonic()
        print(f"Seeding {args.messages - have:,} customer messages over {args.days} days…", flush=True)
        seed.seed(args.messages - have, args.days, random_seed=have, progress=lambda line: print(line, flush=True))
        print(f"Seeded in {time.monotonic() - started:.0f} s", flush=True)
    rollups.refresh_all()
    total = Message.objects.filter(role=Role.CUSTOMER).count()

    user, _ = User.objects.get_or_create(username="bench-manager")
    make_agent(user, admin=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    today = timezone.localdate()
    start = today - timedelta(days=29)
    span = f"from={start.isoformat()}&to={today.isoformat()}"
    in_range = Message.objects.filter(
        role=Role.CUSTOMER, created_at__gte=rollups.day_hours(start)[0], created_at__lt=rollups.day_hours(today)[1]
    ).count()
    # The intent with the most customer messages in the range (its filtered export is the largest).
    named = [row["intent"] for row in stats.by_intent(start, today)]
    top_intent = next((name for name in named if name not in (stats.SMALL_TALK, stats.NO_INTENT)), "")
    urls = [
        f"/console/?{span}",
        f"/console/?{span}&step=hour",
        f"/console/intents/?{span}",
        f"/console/intents/?{span}&sort=accuracy",
        f"/console/conversations/?{span}",
        f"/console/conversations/?{span}&intent={top_intent}",
        f"/console/conversations/?{span}&page=40",
        f"/api/stats/?{span}",
        f"/console/export/summary.csv?{span}",
        f"/console/export/series.csv?{span}&step=day",
        f"/console/export/series.csv?{span}&step=hour",
        f"/console/export/reasons.csv?{span}",
        f"/console/export/intents.csv?{span}",
        f"/console/export/conversations.csv?{span}",
        f"/console/export/conversations.csv?{span}&intent={top_intent}",
        f"/console/export/conversations.csv?{span}&people=yes",
        f"/console/export/conversations.csv?{span}&intent=small+talk",
        f"/console/export/conversations.csv?{span}&destination=large&people=no",
    ]
    for extra in ("/console/operating-point/", "/metrics"):
        try:
            resolve(extra)
            urls.append(extra)
        except Resolver404:
            pass
    live_conversation = Conversation.objects.create()

    def live_message() -> None:
        question = Message.objects.create(
            conversation=live_conversation, role=Role.CUSTOMER, text="where is my order", destination="small",
            intent=top_intent or "", confidence=0.97,
        )  # fmt: skip
        Message.objects.create(
            conversation=live_conversation, role=Role.BOT, text="…", reply_to=question, tier=Tier.SMALL,
            model_name=settings.TANDEM_SMALL_MODEL_NAME, input_tokens=12, latency_ms=3,
        )  # fmt: skip

    def fetch(url: str) -> tuple[float, float, int, int]:
        """(ms to the whole response, ms to its first chunk, status, bytes)."""
        began = time.perf_counter()
        response = client.get(url)
        if response.streaming:
            chunks = iter(response.streaming_content)  # type: ignore[attr-defined]
            body = next(chunks, b"")
            first = time.perf_counter()
            body += b"".join(chunks)
        else:
            body, first = response.content, time.perf_counter()
        return (time.perf_counter() - began) * 1000, (first - began) * 1000, response.status_code, len(body)

    database = f"PostgreSQL {getattr(connection, 'pg_version', '')}" if connection.vendor == "postgresql" else ""
    if connection.vendor == "sqlite":
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    print(
        f"\n{database}; {total:,} customer messages over {args.days} days, {in_range:,} of them in the 30-day range "
        f"{start}..{today}; {args.requests} requests per URL and pass; host: {host()}\n"
    )
    # As the server does once it has loaded (support/asgi.py): what lives as long as the process is
    # moved out of the collector's sight, so a full collection does not walk it mid-request.
    for url in urls:
        fetch(url)
    gc.collect()
    gc.freeze()
    print("| URL (30-day range) | pass | p50 ms | p95 ms | max ms | first byte p95 ms | bytes | within 200 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for url in urls:
        status = fetch(url)[2]
        if status != 200:
            print(f"| `{url}` | | HTTP {status} | | | | | no |")
            continue
        for name in ("quiet", "live"):
            times, firsts = [], []
            size = 0
            for _ in range(args.requests):
                if name == "live":
                    live_message()
                elapsed, first, _, size = fetch(url)
                times.append(elapsed)
                firsts.append(first)
            times.sort()
            firsts.sort()
            p95 = percentile95(times)
            worst = max(worst, p95)
            shown = url.replace(span, "…").replace("?…&", "?").replace("?…", "")
            print(
                f"| `{shown}` | {name} | {statistics.median(times):.0f} | {p95:.0f} | {times[-1]:.0f} | "
                f"{percentile95(firsts):.0f} | {size:,} | {'yes' if p95 <= TARGET_MS else '**no**'} |",
                flush=True,
            )
    print(f"\nworst p95: {worst:.0f} ms (target {TARGET_MS:.0f} ms)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    print(f"commit {commit.strip()}")


if __name__ == "__main__":
    main()

"""The console's rollups, rebuilt in the background too (the console also rebuilds before it reads)."""

from __future__ import annotations

from celery import shared_task

from support.analytics import rollups


@shared_task(ignore_result=True)
def refresh_rollups() -> int:
    """Rebuild every stale hour (idempotent: a second run finds nothing stale)."""
    return rollups.refresh_all()

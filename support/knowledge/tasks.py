"""Background work on the knowledge base and the small model."""

from __future__ import annotations

from celery import shared_task

from support.knowledge import retraining


@shared_task(ignore_result=True)
def train_candidate(run_id: int) -> None:
    """Start a retraining run in a process of its own: training takes minutes, and this worker also runs
    the sweeps. The process records its progress on the run."""
    retraining.spawn(run_id)

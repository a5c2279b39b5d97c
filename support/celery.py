"""The Celery app. Tasks live beside their business area (support/conversations/tasks.py), found automatically.

Two workers run: the large model's (queue "large": one process for the in-process model, threads for a
model server) and a light one for the sweeps and the schedule (queue "default", `--beat`).
"""

import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")

logger = logging.getLogger(__name__)
app = Celery("support")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# What this worker was started to do (set before a prefork pool forks its children).
_serves_large_queue = True
_pool = "prefork"


@celeryd_init.connect
def note_worker_options(options: dict[str, Any], **_: object) -> None:
    global _serves_large_queue, _pool
    queues = options.get("queues") or []
    if isinstance(queues, str):
        queues = queues.split(",")
    _serves_large_queue = not queues or "large" in [queue.strip() for queue in queues]
    pool = options.get("pool_cls") or app.conf.worker_pool
    _pool = pool if isinstance(pool, str) else getattr(pool, "__module__", "prefork")


def _warm_up() -> None:
    """Load the large model and the retrieval encoder when the worker starts, not on the first
    escalation. In a thread: Celery gives process start-up only a few seconds."""

    def load() -> None:
        from chatbot.llm import get_backend
        from chatbot.small.model import warm_up_small_model

        warm_up_small_model()
        get_backend().warm_up()
        logger.info("Models loaded: the worker answers escalations without a cold start")

    threading.Thread(target=load, name="warm-up-models", daemon=True).start()


@worker_process_init.connect
def warm_up_prefork_child(**_: object) -> None:
    # Each process of a prefork pool loads its own copy.
    if _serves_large_queue:
        _warm_up()


@worker_ready.connect
def warm_up_threads(**_: object) -> None:
    # A threads (or solo) pool runs tasks in the worker's own process, which loads the models once.
    if _serves_large_queue and "prefork" not in _pool:
        _warm_up()

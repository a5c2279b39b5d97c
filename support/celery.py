"""The Celery app. Tasks live beside their business area (support/conversations/tasks.py), found automatically."""

import logging
import os
import threading

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")

logger = logging.getLogger(__name__)
app = Celery("support")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def warm_up_models(**_: object) -> None:
    """Load the large model and the retrieval encoder when a worker process starts, not on the first
    escalation. In a thread: Celery gives process start-up only a few seconds."""

    def load() -> None:
        from chatbot.llm import get_backend
        from chatbot.small.model import warm_up_small_model

        warm_up_small_model()
        get_backend().warm_up()
        logger.info("Models loaded: the worker answers escalations without a cold start")

    threading.Thread(target=load, name="warm-up-models", daemon=True).start()

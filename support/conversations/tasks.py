"""The large tier's Celery task. It takes an id and re-reads everything, so a redelivery is harmless."""

from __future__ import annotations

import logging
import threading
import time
import uuid

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection

from chatbot.llm import LLMError, get_backend
from chatbot.llm.base import Generation
from chatbot.llm.breaker import BreakerOpen, get_breaker
from chatbot.llm.guard import AnswerRefused, OutputGuard
from chatbot.routes import Reason
from support.conversations import actions, broadcast, prompts
from support.conversations.protocol import token_frame
from support.knowledge.models import Article

logger = logging.getLogger(__name__)
MAX_RETRIES = 3
OWNER_CHECK_SECONDS = 1.0
# A job waiting for an earlier question of its conversation to be answered looks again this often.
ORDER_WAIT_SECONDS = 1.0


class Superseded(Exception):
    """A later run took the job over (this run's worker was taken for dead): this one stops."""


class _Run:
    """One run of a large-model job, while the model writes: it beats (every TANDEM_LLM_HEARTBEAT_SECONDS,
    from a thread of its own, so a model that is slow to write is not taken for dead), marks the first
    token, and decides what the customer sees. The customer sees the answer as it is written only while
    it may still be delivered to them (actions.large_run_status): an agent may take over, or a later
    message go to people, while the model writes; from then on the text is only a draft for the agents.
    Re-checked at most once a second."""

    def __init__(self, message_id: int, attempt: int, reply_to: str | None, conversation_id: uuid.UUID) -> None:
        self.message_id, self.attempt = message_id, attempt
        self.reply_to, self.conversation_id = reply_to, conversation_id
        self.current, self.allowed = actions.large_run_status(message_id, attempt)
        self.checked = time.monotonic()
        self.first_token = True
        # A run after one whose worker died tells the widget to drop what that one had streamed.
        self.restart = attempt > 1
        self._done = threading.Event()
        self._beating = threading.Thread(target=self._beat, name=f"heartbeat-{message_id}", daemon=True)

    def __enter__(self) -> _Run:
        self._beating.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._beating.join()

    def _beat(self) -> None:
        try:
            while not self._done.wait(settings.TANDEM_LLM_HEARTBEAT_SECONDS):
                if not actions.large_job_heartbeat(self.message_id, self.attempt):
                    self.current = False
                    return
        except Exception:
            logger.exception("The heartbeat of message %s failed", self.message_id)
        finally:
            connection.close()

    def model_wrote(self) -> None:
        """Called with every token the model writes (before the output guard holds any back)."""
        if not self.current:
            raise Superseded()
        if self.first_token:
            self.first_token = False
            actions.large_job_first_token(self.message_id, self.attempt)

    def stream(self, delta: str) -> None:
        """Send what the output guard let through to the customer, while they may still see it."""
        if self.allowed and time.monotonic() - self.checked >= OWNER_CHECK_SECONDS:
            self.current, self.allowed = actions.large_run_status(self.message_id, self.attempt)
            self.checked = time.monotonic()
        if not self.current:
            raise Superseded()
        if self.allowed:
            frame = token_frame(self.reply_to, delta, restart=self.restart)
            self.restart = False
            broadcast.send_to_conversation(self.conversation_id, frame)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=settings.TANDEM_LLM_TASK_TIME_LIMIT,
    time_limit=settings.TANDEM_LLM_TASK_TIME_LIMIT + 30,
)
def answer_with_large_model(self, message_id: int) -> None:  # type: ignore[no-untyped-def]
    job = actions.start_large_job(message_id)
    message = job.message
    if message is None:
        logger.info("Message %s already has a large-model answer (or is gone): nothing to do", message_id)
        return
    if job.wait:
        # Not a retry: it keeps its retries for the model's own failures.
        self.apply_async((message_id,), countdown=ORDER_WAIT_SECONDS, retries=self.request.retries)
        return
    run = _Run(message_id, job.attempt, message.client_id, message.conversation_id)
    # Nothing the guard refuses reaches the customer, not even as streamed tokens.
    guard = OutputGuard(prompts.instructions(message), settings.TANDEM_LLM_MAX_ANSWER_CHARS, forward=run.stream)

    def on_token(delta: str) -> None:
        run.model_wrote()
        guard.feed(delta)

    try:
        with run:
            # The prompt is built inside the breaker's call: while it is open, not even the retrieval
            # runs for a back end that will not be called.
            given: list[Article] = []

            def generate() -> Generation:
                chat, articles = prompts.grounded(message)
                given[:] = articles
                return get_backend().generate(chat, max_tokens=settings.TANDEM_LLM_MAX_TOKENS, on_token=on_token)

            generation = get_breaker().call(generate)
            guard.finish(generation.text)
    except Superseded:
        logger.info("Run %s of message %s was taken over by a later run: stopped", job.attempt, message_id)
        return
    except BreakerOpen:
        actions.large_answer_failed(message_id, "the circuit breaker is open", Reason.LARGE_MODEL_UNAVAILABLE)
        return
    except AnswerRefused as refusal:
        actions.large_answer_failed(message_id, f"output guard: {refusal}")
        return
    except LLMError as error:
        if self.request.retries >= MAX_RETRIES:
            actions.large_answer_failed(message_id, str(error))
            return
        actions.large_job_retrying(message_id, job.attempt)
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 1)) from error
    except SoftTimeLimitExceeded:
        actions.large_answer_failed(message_id, "time limit exceeded")
        return
    if not generation.text.strip():
        actions.large_answer_failed(message_id, "the model returned an empty answer")
        return
    actions.store_large_answer(message_id, generation, prompts.sources(given))


@shared_task
def purge_inactive_conversations() -> int:
    """The retention setting, applied: erase conversations inactive for TANDEM_RETENTION_DAYS days."""
    if not settings.TANDEM_RETENTION_DAYS:
        return 0
    erased = actions.purge_inactive_conversations(settings.TANDEM_RETENTION_DAYS)
    if erased:
        logger.info("Erased %s conversation(s) inactive for %s days", erased, settings.TANDEM_RETENTION_DAYS)
    return erased


# A job still queued this long after it was queued is lost (its customer was told at the first-token
# deadline): the task's own time limit, its retries' back-off (2 + 4 + 8 s) and a minute of queueing.
STUCK_AFTER_SECONDS = settings.TANDEM_LLM_TASK_TIME_LIMIT + 30 + 14 + 60


@shared_task
def sweep_large_jobs() -> dict[str, int]:
    """Every few seconds (Celery beat, TANDEM_LLM_SWEEP_SECONDS), on the light worker:
    - a question with no first token by its deadline goes to people, and the customer is told;
    - a job whose worker stopped beating is queued again (or fails after actions.MAX_RUNS runs);
    - a job still queued long after it should have run (its task was lost) fails, so the questions
      after it in its conversation are not held up."""
    late = 0
    if settings.TANDEM_LLM_FIRST_TOKEN_SECONDS:
        for message_id in actions.late_large_jobs(settings.TANDEM_LLM_FIRST_TOKEN_SECONDS):
            late += actions.large_answer_late(message_id)
    silent = 4 * settings.TANDEM_LLM_HEARTBEAT_SECONDS
    orphaned = actions.orphaned_large_jobs(silent)
    requeued = sum(actions.requeue_orphaned_job(message_id, silent) for message_id in orphaned)
    stuck = actions.stuck_large_jobs(STUCK_AFTER_SECONDS)
    for message_id in stuck:
        actions.large_answer_failed(message_id, "the job was lost before any worker ran it")
    return {"late": late, "requeued": requeued, "lost": len(stuck)}

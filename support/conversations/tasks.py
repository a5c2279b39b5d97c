"""The large tier's Celery task. It takes an id and re-reads everything, so a redelivery is harmless."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from chatbot.llm import LLMError, get_backend
from chatbot.llm.guard import AnswerRefused, OutputGuard
from support.conversations import actions, broadcast, prompts
from support.conversations.protocol import token_frame

logger = logging.getLogger(__name__)
MAX_RETRIES = 3
OWNER_CHECK_SECONDS = 1.0


class _StreamGate:
    """The customer sees the answer as it is written only while it may still be delivered to them
    (actions.bot_may_reply): an agent may take over, or a later message go to people, while the model
    writes; from then on the text is only a draft for the agents. Re-checked at most once a second."""

    def __init__(self, message_id: int) -> None:
        self.message_id = message_id
        self.allowed = actions.bot_may_reply(message_id)
        self.checked = time.monotonic()

    def open(self) -> bool:
        if self.allowed and time.monotonic() - self.checked >= OWNER_CHECK_SECONDS:
            self.allowed = actions.bot_may_reply(self.message_id)
            self.checked = time.monotonic()
        return self.allowed


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=settings.TANDEM_LLM_TASK_TIME_LIMIT,
    time_limit=settings.TANDEM_LLM_TASK_TIME_LIMIT + 30,
)
def answer_with_large_model(self, message_id: int) -> None:  # type: ignore[no-untyped-def]
    message = actions.pending_large_answer(message_id)
    if message is None:
        logger.info("Message %s already has a large-model answer (or is gone): nothing to do", message_id)
        return
    conversation_id, reply_to = message.conversation_id, message.client_id
    gate = _StreamGate(message_id)

    def stream(delta: str) -> None:
        if gate.open():
            broadcast.send_to_conversation(conversation_id, token_frame(reply_to, delta))

    # Nothing the guard refuses reaches the customer, not even as streamed tokens.
    guard = OutputGuard(prompts.instructions(message), settings.TANDEM_LLM_MAX_ANSWER_CHARS, forward=stream)
    try:
        generation = get_backend().generate(
            prompts.build(message), max_tokens=settings.TANDEM_LLM_MAX_TOKENS, on_token=guard.feed
        )
        guard.finish(generation.text)
    except AnswerRefused as refusal:
        actions.large_answer_failed(message_id, f"output guard: {refusal}")
        return
    except LLMError as error:
        if self.request.retries >= MAX_RETRIES:
            actions.large_answer_failed(message_id, str(error))
            return
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 1)) from error
    except SoftTimeLimitExceeded:
        actions.large_answer_failed(message_id, "time limit exceeded")
        return
    if not generation.text.strip():
        actions.large_answer_failed(message_id, "the model returned an empty answer")
        return
    actions.store_large_answer(message_id, generation)


@shared_task
def purge_inactive_conversations() -> int:
    """The retention setting, applied: erase conversations inactive for TANDEM_RETENTION_DAYS days."""
    if not settings.TANDEM_RETENTION_DAYS:
        return 0
    erased = actions.purge_inactive_conversations(settings.TANDEM_RETENTION_DAYS)
    if erased:
        logger.info("Erased %s conversation(s) inactive for %s days", erased, settings.TANDEM_RETENTION_DAYS)
    return erased


# A large-model answer still missing this long after its question is not coming: the task's own time
# limit, its retries' back-off (2 + 4 + 8 s) and a minute of queueing.
STUCK_AFTER_SECONDS = settings.TANDEM_LLM_TASK_TIME_LIMIT + 30 + 14 + 60


@shared_task
def sweep_stuck_escalations() -> int:
    """Every minute (Celery beat): a conversation left waiting for a large-model answer that will never
    come goes to people, and the customer is told (as when the large model fails)."""
    stuck = actions.stuck_large_answers(STUCK_AFTER_SECONDS)
    for message_id in stuck:
        actions.large_answer_failed(message_id, "no answer came within the time limit")
    return len(stuck)

"""The large tier stays responsive: questions answered in order, a first-token deadline, jobs whose
worker died queued again, lost jobs failed, and a back end that keeps failing left alone for a while."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from chatbot.llm.breaker import get_breaker
from support.conversations import actions
from support.conversations.models import Conversation, JobState, LargeJob, Message, Owner, Tier
from support.conversations.tasks import STUCK_AFTER_SECONDS, answer_with_large_model, sweep_large_jobs
from tests.conftest import post_as_server
from tests.conversations.conftest import FakeBackend, Retried, retry_now

pytestmark = pytest.mark.django_db

HARD = "what is the airspeed velocity of an unladen swallow"
HARDER = "and how far could it carry a coconut across the sea"


@pytest.fixture
def conversation(knowledge_base: None, small_model_dir: object) -> Conversation:
    session = actions.open_session(None)
    return Conversation.objects.get(pk=session.conversation_id)


@pytest.fixture
def requeued() -> Iterator[mock.MagicMock]:
    """Runs put back on the queue to wait their turn (apply_async with a countdown)."""
    with mock.patch("support.conversations.tasks.answer_with_large_model.apply_async") as apply_async:
        yield apply_async


def escalate(conversation: Conversation, client_id: str, text: str = HARD) -> Message:
    post_as_server(conversation.id, client_id, text)
    message = Message.objects.get(conversation=conversation, client_id=client_id)
    assert message.destination == "large", message.escalation_reason
    return message


def events(conversation: Conversation) -> list[dict[str, Any]]:
    return actions.events_after(conversation.id, 0)


def test_an_escalation_queues_a_job_for_the_large_model(conversation: Conversation, frames: list) -> None:
    message = escalate(conversation, "q1")
    job = LargeJob.objects.get(message=message)
    assert (job.state, job.attempt, job.conversation_id) == (JobState.QUEUED, 0, conversation.id)


def test_a_conversations_questions_are_answered_in_the_order_they_were_asked(
    backend: type[FakeBackend], conversation: Conversation, frames: list, requeued: mock.MagicMock
) -> None:
    first, second = escalate(conversation, "q1"), escalate(conversation, "q2", HARDER)
    # The second question's job reaches a worker first: it waits its turn, without calling the model
    # and without spending one of its retries.
    answer_with_large_model.apply(args=[second.id])
    assert backend.calls == [] and requeued.call_count == 1
    assert requeued.call_args.kwargs["countdown"] > 0 and requeued.call_args.kwargs["retries"] == 0
    answer_with_large_model.apply(args=[first.id])
    answer_with_large_model.apply(args=[second.id])
    answers = [event["reply_to"] for event in events(conversation) if event["type"] == "answer"]
    assert answers == ["q1", "q2"]
    # The conversation waited for the large model until its last question was answered.
    conversation.refresh_from_db()
    assert conversation.owner == Owner.BOT


def test_the_conversation_keeps_waiting_while_a_later_question_is_unanswered(
    backend: type[FakeBackend], conversation: Conversation, frames: list
) -> None:
    first = escalate(conversation, "q1")
    escalate(conversation, "q2", HARDER)
    answer_with_large_model.apply(args=[first.id])
    conversation.refresh_from_db()
    assert conversation.owner == Owner.PENDING


def past_deadline(message: Message, settings: Any) -> None:
    LargeJob.objects.filter(message=message).update(
        queued_at=timezone.now() - timedelta(seconds=settings.TANDEM_LLM_FIRST_TOKEN_SECONDS + 1)
    )


def test_no_first_token_by_the_deadline_sends_the_question_to_people_and_tells_the_customer(
    backend: type[FakeBackend], conversation: Conversation, frames: list[dict[str, Any]], settings: Any
) -> None:
    message = escalate(conversation, "q1")
    assert sweep_large_jobs.apply().get()["late"] == 0
    past_deadline(message, settings)
    assert sweep_large_jobs.apply().get()["late"] == 1
    conversation.refresh_from_db()
    assert (conversation.owner, conversation.escalation_reason) == (Owner.PEOPLE, "large_model_slow")
    told = events(conversation)[-1]
    assert told["type"] == "escalated" and told["reason"] == "large_model_slow" and told["reply_to"] == "q1"
    assert "longer" in told["text"]
    # Flagged once.
    assert sweep_large_jobs.apply().get()["late"] == 0
    # No worker had taken it: the large tier is overloaded, so the job is dropped rather than
    # written as a draft nobody waits for.
    answer_with_large_model.apply(args=[message.id])
    assert backend.calls == [] and not Message.objects.filter(tier=Tier.LARGE).exists()
    assert LargeJob.objects.get(message=message).state == JobState.FAILED


def test_a_late_job_a_worker_has_started_becomes_a_draft_for_the_agent(
    backend: type[FakeBackend], conversation: Conversation, frames: list[dict[str, Any]], settings: Any
) -> None:
    message = escalate(conversation, "q1")
    LargeJob.objects.filter(message=message).update(state=JobState.STARTED, heartbeat_at=timezone.now())
    past_deadline(message, settings)
    assert sweep_large_jobs.apply().get()["late"] == 1
    # The worker's run goes on (here: a redelivery of the same job) and its answer waits for the agent.
    LargeJob.objects.filter(message=message).update(state=JobState.QUEUED)
    answer_with_large_model.apply(args=[message.id])
    draft = Message.objects.get(tier=Tier.LARGE)
    assert not draft.delivered
    assert not [frame for frame in frames if frame["type"] == "token"]


def test_a_job_already_streaming_is_not_late(
    backend: type[FakeBackend], conversation: Conversation, frames: list, settings: Any
) -> None:
    message = escalate(conversation, "q1")
    run = actions.start_large_job(message.id)
    actions.large_job_first_token(message.id, run.attempt)
    past_deadline(message, settings)
    assert sweep_large_jobs.apply().get()["late"] == 0


def test_without_a_deadline_nothing_is_late(
    backend: type[FakeBackend], conversation: Conversation, frames: list, settings: Any
) -> None:
    message = escalate(conversation, "q1")
    past_deadline(message, settings)
    settings.TANDEM_LLM_FIRST_TOKEN_SECONDS = 0
    assert sweep_large_jobs.apply().get()["late"] == 0


def silent(message: Message, settings: Any) -> None:
    LargeJob.objects.filter(message=message).update(
        heartbeat_at=timezone.now() - timedelta(seconds=4 * settings.TANDEM_LLM_HEARTBEAT_SECONDS + 1)
    )


def test_a_job_whose_worker_stopped_beating_is_queued_again_and_restarts_the_stream(
    backend: type[FakeBackend],
    conversation: Conversation,
    frames: list[dict[str, Any]],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    message = escalate(conversation, "q1")
    first_run = actions.start_large_job(message.id)
    actions.large_job_first_token(message.id, first_run.attempt)
    silent(message, settings)
    with (
        mock.patch("support.conversations.tasks.answer_with_large_model.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert sweep_large_jobs.apply().get()["requeued"] == 1
    delay.assert_called_once_with(message.id)
    job = LargeJob.objects.get(message=message)
    assert job.state == JobState.QUEUED and job.queued_at > timezone.now() - timedelta(seconds=5)
    # The dead run's heartbeat, should it come back to life, is refused: it no longer owns the job.
    assert not actions.large_job_heartbeat(message.id, first_run.attempt)
    answer_with_large_model.apply(args=[message.id])
    tokens = [frame for frame in frames if frame["type"] == "token"]
    # The widget drops what the dead run had streamed, then shows the new run's answer.
    assert tokens[0].get("restart") is True and not any(frame.get("restart") for frame in tokens[1:])
    assert Message.objects.get(tier=Tier.LARGE).delivered
    assert LargeJob.objects.get(message=message).attempt == 2


def test_a_job_that_loses_its_worker_every_time_goes_to_people(
    backend: type[FakeBackend], conversation: Conversation, frames: list, settings: Any
) -> None:
    message = escalate(conversation, "q1")
    LargeJob.objects.filter(message=message).update(state=JobState.STARTED, attempt=actions.MAX_RUNS)
    silent(message, settings)
    assert sweep_large_jobs.apply().get()["requeued"] == 1
    assert LargeJob.objects.get(message=message).state == JobState.FAILED
    conversation.refresh_from_db()
    assert (conversation.owner, conversation.escalation_reason) == (Owner.PEOPLE, "large_model_failed")


def test_a_run_taken_over_by_a_later_run_stops(
    backend: type[FakeBackend], conversation: Conversation, frames: list[dict[str, Any]], monkeypatch
) -> None:
    monkeypatch.setattr("support.conversations.tasks.OWNER_CHECK_SECONDS", 0.0)
    message = escalate(conversation, "q1")
    backend.words = [
        f"{word} " for word in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    ]

    def a_later_run_starts() -> None:
        if len(backend.calls) == 1 and [frame for frame in frames if frame["type"] == "token"]:
            LargeJob.objects.filter(message=message).update(attempt=2)

    backend.before_token = staticmethod(a_later_run_starts)
    answer_with_large_model.apply(args=[message.id])
    assert not Message.objects.filter(tier=Tier.LARGE).exists()
    streamed = "".join(frame["text"] for frame in frames if frame["type"] == "token")
    assert streamed and len(streamed) < len("".join(backend.words))


def test_a_job_whose_task_was_lost_fails_and_unblocks_the_questions_after_it(
    backend: type[FakeBackend], conversation: Conversation, frames: list, requeued: mock.MagicMock, settings: Any
) -> None:
    # Without a deadline (with one, the customer was handed to people long before, and the job dropped).
    settings.TANDEM_LLM_FIRST_TOKEN_SECONDS = 0
    first, second = escalate(conversation, "q1"), escalate(conversation, "q2", HARDER)
    LargeJob.objects.filter(message=first).update(queued_at=timezone.now() - timedelta(seconds=STUCK_AFTER_SECONDS + 1))
    assert sweep_large_jobs.apply().get()["lost"] == 1
    assert LargeJob.objects.get(message=first).state == JobState.FAILED
    answer_with_large_model.apply(args=[second.id])
    assert requeued.call_count == 0
    assert LargeJob.objects.get(message=second).state == JobState.ANSWERED


def test_an_agent_who_took_over_gets_no_late_flag(
    backend: type[FakeBackend], conversation: Conversation, frames: list, agent: User, settings: Any
) -> None:
    message = escalate(conversation, "q1")
    actions.take_over(conversation.id, agent)
    past_deadline(message, settings)
    assert sweep_large_jobs.apply().get()["late"] == 0
    assert not [event for event in events(conversation) if event.get("reason") == "large_model_slow"]


@pytest.fixture
def breaker_on(settings: Any, redis_url: str) -> Iterator[None]:
    """The circuit breaker as deployed (its state in Redis), opening after one failure."""
    settings.REDIS_URL = redis_url
    settings.TANDEM_LLM_BREAKER_FAILURES = 1
    get_breaker().reset()
    yield
    get_breaker().reset()


def test_once_the_back_end_keeps_failing_questions_go_to_people_without_calling_it(
    backend: type[FakeBackend], conversation: Conversation, frames: list, breaker_on: None, requeued: Any
) -> None:
    message = escalate(conversation, "q1")
    backend.failures_left = 99
    with (
        mock.patch("support.conversations.tasks.answer_with_large_model.retry", side_effect=retry_now),
        pytest.raises(Retried),
    ):
        answer_with_large_model.apply(args=[message.id], throw=True)
    # One failure opened the breaker: the retry did not call the model again.
    assert len(backend.calls) == 1 and get_breaker().is_open()
    told = events(conversation)[-1]
    assert told["type"] == "escalated" and told["reason"] == "large_model_unavailable"
    assert LargeJob.objects.get(message=message).state == JobState.FAILED

    # Meanwhile a new question for the large model goes straight to people, without a job.
    other = Conversation.objects.get(pk=actions.open_session(None).conversation_id)
    post_as_server(other.id, "o1", HARD)
    asked = Message.objects.get(conversation=other, client_id="o1")
    assert (asked.escalation_reason, asked.destination) == ("large_model_unavailable", "people")
    assert not LargeJob.objects.filter(message=asked).exists()


def test_a_late_job_waiting_to_retry_is_not_dropped(
    backend: type[FakeBackend], conversation: Conversation, frames: list, settings: Any
) -> None:
    message = escalate(conversation, "q1")
    # A worker ran it once; the model failed and the task waits to try again.
    LargeJob.objects.filter(message=message).update(state=JobState.QUEUED, attempt=1)
    past_deadline(message, settings)
    assert sweep_large_jobs.apply().get()["late"] == 1
    assert LargeJob.objects.get(message=message).state == JobState.QUEUED

"""Faults injected for real: a killed worker, a model server that is down, slow or talks nonsense, Redis
restarted, two server processes on one conversation, the database locked. Real processes, a real Redis,
real sockets and a real HTTP model server (bench/model_server.py); each test ends with nothing lost,
nothing answered twice, and the customer told within a stated bound.

The bound: a question whose answer cannot come is handed to people, and the customer told, within
TANDEM_LLM_FIRST_TOKEN_SECONDS of the last time it was queued plus one sweep (TANDEM_LLM_SWEEP_SECONDS);
a job whose worker died is queued again within four heartbeats plus one sweep. Here, with a 6 s
deadline, 1 s sweeps and 0.5 s heartbeats, customers are told within TOLD_WITHIN seconds; with the
defaults (30 s, 5 s, 5 s) that is 35 s, and 60 s after a worker dies.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.conftest import (
    BIN,
    ROOT,
    ChatClient,
    Stack,
    embedded_redis,
    free_port,
    new_address,
    stack_env,
    start_stack,
    stop_stack,
    tandem,
    wait_until,
)

DEADLINE_SECONDS = 6
SETTINGS = {
    "TANDEM_LLM_BACKEND": "openai",
    "TANDEM_LLM_MODEL": "stand-in",
    "TANDEM_LLM_FIRST_TOKEN_SECONDS": str(DEADLINE_SECONDS),
    "TANDEM_LLM_SWEEP_SECONDS": "1",
    "TANDEM_LLM_HEARTBEAT_SECONDS": "0.5",
    "TANDEM_LLM_BREAKER_FAILURES": "3",
    "TANDEM_LLM_BREAKER_SECONDS": "5",
    "TANDEM_LLM_TIMEOUT": "30",
}
# The deadline, a sweep, and room for a busy two-core machine.
TOLD_WITHIN = DEADLINE_SECONDS + 1 + 5
# Questions the demo knowledge base does not answer: the router sends them to the large model.
HARD = [
    "what is the airspeed velocity of an unladen swallow",
    "Can you recommend a good book about sailing across the Atlantic?",
    "How do I fix a dripping tap in my bathroom sink?",
    "What is the capital city of Mongolia and how cold does it get?",
    "Why do cats purr when they are stroked?",
    "How many moons does Jupiter have these days?",
]
ROUTINE = ["How do I reset my password?", "How do I get a VAT invoice?", "Do you price match?"]
GIVEN_UP = {"large_model_slow", "large_model_failed", "large_model_unavailable"}


class ModelServer:
    """bench/model_server.py in a process of its own, restartable on the same port."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, str(ROOT / "bench" / "model_server.py"), "--port", str(self.port)]
        log = (self.logs / "model-server.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._listening, 20, "the model server")

    def _listening(self) -> bool:
        try:
            return httpx.get(self.url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def control(self, **settings: Any) -> None:
        httpx.post(self.url + "/control", json=settings, timeout=5).raise_for_status()

    def status(self) -> dict[str, Any]:
        return dict(httpx.get(self.url, timeout=5).json())


@dataclass
class Faults:
    stack: Stack
    model: ModelServer
    redis: subprocess.Popen[bytes]
    redis_port: int
    data_dir: Path

    def breaker(self) -> str | None:
        state = redis.Redis(port=self.redis_port, decode_responses=True).get("tandem:llm:pybreaker:state")
        return str(state) if state else None

    def restart_redis(self) -> None:
        self.redis, _ = embedded_redis(self.data_dir, self.redis_port)

    def shell(self, code: str) -> str:
        return self.stack.manage("shell", "-v", "0", "-c", code).strip()


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[Faults]:
    data_dir = tmp_path_factory.mktemp("faults")
    redis_process, redis_url = embedded_redis(data_dir)
    model = ModelServer(data_dir)
    model.start()
    env = stack_env(data_dir, redis_url, trained_model_dir, TANDEM_LLM_BASE_URL=model.url + "/v1", **SETTINGS)
    state = Faults(
        stack=start_stack(data_dir, env),
        model=model,
        redis=redis_process,
        redis_port=int(redis_url.rsplit(":", 1)[1].split("/")[0]),
        data_dir=data_dir,
    )
    try:
        yield state
    finally:
        stop_stack(state.stack)
        model.stop()
        state.redis.terminate()
        state.redis.wait(timeout=10)


@pytest.fixture
def faulty(faults: Faults) -> Faults:
    """The fault stack with a working model server (1 s answers) and a closed circuit breaker."""
    if not faults.model.running:
        faults.model.start()
    faults.model.control(mode="ok", seconds=1.0, first_token=0.1, words=14, reset_counts=True)
    redis.Redis(port=faults.redis_port).delete(
        *(f"tandem:llm:pybreaker:{key}" for key in ("state", "fail_counter", "success_counter", "opened_at"))
    )
    return faults


def frames_for(client: ChatClient, client_id: str) -> list[dict[str, Any]]:
    return [f for f in client.frames if f.get("reply_to") == client_id or f.get("id") == client_id]


def answer_to(client_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["type"] == "answer" and frame.get("reply_to") == client_id


def escalated_to_large(client: ChatClient, client_id: str) -> None:
    first = client.wait_for(lambda f: f["type"] in ("escalated", "answer") and f.get("reply_to") == client_id)
    assert (first["type"], first.get("destination")) == ("escalated", "large"), first


def told_people(client: ChatClient, client_id: str, timeout: float = TOLD_WITHIN) -> dict[str, Any]:
    return client.wait_for(
        lambda f: f["type"] == "escalated" and f.get("reply_to") == client_id and f["destination"] == "people",
        timeout=timeout,
    )


def ask_and_hear_of_people(client: ChatClient, client_id: str, text: str) -> dict[str, Any]:
    """Ask a question the router sends to the large model; the customer is told it went to people
    instead, within TOLD_WITHIN seconds. Returns that notice."""
    client.ask(client_id, text)
    escalated_to_large(client, client_id)
    asked = time.monotonic()
    notice = told_people(client, client_id)
    assert time.monotonic() - asked < TOLD_WITHIN
    return notice


def stored_large_answers(faults: Faults, client_id: str) -> str:
    """The large-model answers stored for the customer message with this id: "<count> <delivered...>"."""
    return faults.shell(
        "from support.conversations.models import Message; "
        f"rows = list(Message.objects.filter(tier='large', reply_to__client_id={client_id!r}).values_list("
        "'delivered', flat=True)); print(len(rows), *rows)"
    )


def test_one_worker_streams_many_answers_at_once_from_a_model_server(faulty: Faults) -> None:
    faulty.model.control(seconds=3.0)
    clients = [ChatClient(faulty.stack) for _ in HARD]
    try:
        for number, client in enumerate(clients):
            client.ask(f"c{number}", HARD[number])
        for number, client in enumerate(clients):
            answer = client.wait_for(answer_to(f"c{number}"), 40)
            assert answer["tier"] == "large"
    finally:
        for client in clients:
            client.close()
    # The model server had every question at once (TANDEM_LLM_CONCURRENCY threads), not one after another.
    assert faulty.model.status()["peak"] == len(HARD)


def test_a_worker_killed_in_the_middle_of_an_answer_is_replaced_and_the_answer_comes_once(faulty: Faults) -> None:
    faulty.model.control(seconds=8.0, words=16)
    client = ChatClient(faulty.stack)
    try:
        client.ask("k1", HARD[0])
        escalated_to_large(client, "k1")
        client.wait_for(lambda f: f["type"] == "token" and f["reply_to"] == "k1", timeout=20)
        worker = faulty.stack.processes[0]
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        killed = time.monotonic()
        command = tandem.celery_workers(faulty.stack.logs, BIN / "celery")[0][1]
        faulty.stack.processes[0] = faulty.stack.start("worker-restarted", command)
        # Queued again within four heartbeats and a sweep; answered by the new worker, or, if it was not
        # up by the deadline, handed to people. Either way the customer hears, once.
        outcome = client.wait_for(
            lambda f: f.get("reply_to") == "k1" and (f["type"] == "answer" or f.get("destination") == "people"),
            timeout=2 + 1 + TOLD_WITHIN + 5,
        )
        assert time.monotonic() - killed < 2 + 1 + TOLD_WITHIN + 5
        if outcome["type"] == "answer":
            assert outcome["tier"] == "large"
            # The new run started the stream again: the widget dropped the dead run's words.
            assert any(f.get("restart") for f in frames_for(client, "k1") if f["type"] == "token")
        wait_until(lambda: stored_large_answers(faulty, "k1").startswith("1"), 30, "the answer to be stored")
        client.drain(2)
        finals = [f for f in frames_for(client, "k1") if f["type"] == "answer"]
        assert len(finals) == (1 if outcome["type"] == "answer" else 0)
    finally:
        client.close()
    assert stored_large_answers(faulty, "k1").split()[0] == "1"


def test_a_model_server_that_is_down_hands_questions_to_people_then_is_left_alone_then_tried_again(
    faulty: Faults,
) -> None:
    faulty.model.stop()
    client = ChatClient(faulty.stack)
    try:
        assert ask_and_hear_of_people(client, "d1", HARD[1])["reason"] in GIVEN_UP
        # Three failed calls (the first try and two retries) open the circuit breaker: the next question
        # goes straight to people, without waiting on the back end.
        wait_until(lambda: faulty.breaker() == "open", 20, "the circuit breaker to open")
        other = ChatClient(faulty.stack)
        try:
            other.ask("d2", HARD[2])
            first = other.wait_for(lambda f: f["type"] == "escalated" and f["reply_to"] == "d2")
            assert (first["destination"], first["reason"]) == ("people", "large_model_unavailable")
        finally:
            other.close()
        # Back up: once the breaker's pause is over, the large model answers again.
        faulty.model.start()
        time.sleep(5)
        third = ChatClient(faulty.stack)
        try:
            third.ask("d3", HARD[3])
            escalated_to_large(third, "d3")
            answer = third.wait_for(lambda f: f["type"] == "answer" and f["reply_to"] == "d3", timeout=30)
            assert answer["tier"] == "large"
        finally:
            third.close()
    finally:
        client.close()
    assert not [f for f in frames_for(client, "d1") if f["type"] == "answer"]


def test_a_model_server_slower_than_the_deadline_hands_the_question_to_people_and_its_answer_is_a_draft(
    faulty: Faults,
) -> None:
    faulty.model.control(first_token=DEADLINE_SECONDS + 3, seconds=DEADLINE_SECONDS + 4)
    client = ChatClient(faulty.stack)
    try:
        assert ask_and_hear_of_people(client, "s1", HARD[4])["reason"] == "large_model_slow"
        # The answer comes later, as a draft for the agent who follows up; the customer never sees it.
        wait_until(lambda: stored_large_answers(faulty, "s1") == "1 False", 30, "the draft")
        assert not [f for f in frames_for(client, "s1") + client.drain(1) if f["type"] in ("answer", "token")]
    finally:
        client.close()


def test_a_model_server_answering_garbage_never_reaches_the_customer(faulty: Faults) -> None:
    faulty.model.control(mode="garbage")
    client = ChatClient(faulty.stack)
    try:
        assert ask_and_hear_of_people(client, "g1", HARD[5])["reason"] in GIVEN_UP
        shown = "".join(f["text"] for f in frames_for(client, "g1") + client.drain(1) if f["type"] == "token")
        assert "not json" not in shown
        assert not [f for f in client.frames if f["type"] == "answer"]
    finally:
        client.close()
    assert stored_large_answers(faulty, "g1") == "0"


def test_after_redis_restarts_a_conversation_catches_up_from_the_database(faulty: Faults) -> None:
    client = ChatClient(faulty.stack)
    token = client.token
    client.ask("r1", ROUTINE[0])
    last = client.wait_for(lambda f: f["type"] == "answer" and f["reply_to"] == "r1")["seq"]
    faulty.redis.terminate()
    faulty.redis.wait(timeout=10)
    try:
        # With Redis down the message is still stored and answered on the customer's own socket,
        # or the socket fails and the customer sends it again later; either way nothing is lost.
        try:
            client.ask("r2", ROUTINE[1])
            client.wait_for(lambda f: f["type"] == "answer" and f["reply_to"] == "r2", timeout=10)
        except Exception:  # noqa: BLE001 - the socket may go with Redis; the reconnect below catches up
            pass
    finally:
        faulty.restart_redis()
    client.close()
    wait_until(lambda: _connects(faulty.stack), 30, "the server to accept chats again")
    again = ChatClient(faulty.stack, token=token, after=last)
    try:
        caught_up = again.drain(2)
        if not [f for f in caught_up if f["type"] == "answer" and f.get("reply_to") == "r2"]:
            again.ask("r2", ROUTINE[1])
            again.wait_for(lambda f: f["type"] == "answer" and f["reply_to"] == "r2")
        again.ask("r3", ROUTINE[2])
        again.wait_for(lambda f: f["type"] == "answer" and f["reply_to"] == "r3")
    finally:
        again.close()
    replay = ChatClient(faulty.stack, token=token, after=0)
    try:
        events = replay.drain(2)
    finally:
        replay.close()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for client_id in ("r1", "r2", "r3"):
        assert len([e for e in events if e["type"] == "ack" and e["id"] == client_id]) == 1
        assert len([e for e in events if e["type"] == "answer" and e["reply_to"] == client_id]) == 1


def _connects(stack: Stack) -> bool:
    try:
        ChatClient(stack).close()
        return True
    except Exception:  # noqa: BLE001 - not yet
        return False


def test_customers_on_two_server_processes_writing_to_one_conversation_get_every_seq_once(faulty: Faults) -> None:
    port = free_port()
    second = faulty.stack.start(
        "server-2",
        tandem.asgi_server(os.environ, ["--host", "127.0.0.1", "--port", str(port)], ["-p", str(port)], BIN),
    )
    other_stack = Stack(http=f"http://127.0.0.1:{port}", env=faulty.stack.env, logs=faulty.stack.logs)
    try:
        wait_until(lambda: _connects(other_stack), 60, "the second server process")
        here = ChatClient(faulty.stack)
        there = ChatClient(other_stack, token=here.token)
        assert there.session["conversation"] == here.session["conversation"]
        try:
            sent = {"a": here, "b": there}

            def burst(prefix: str) -> None:
                for number in range(6):
                    sent[prefix].ask(f"{prefix}{number}", ROUTINE[number % 3])

            writers = [threading.Thread(target=burst, args=(prefix,)) for prefix in sent]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join()
            ids = [f"{prefix}{number}" for prefix in sent for number in range(6)]
            for client in (here, there):
                # Each socket sees every answer, its own and the other process's.
                for client_id in ids:
                    client.wait_for(answer_to(client_id), timeout=30)
        finally:
            here.close()
            there.close()
        replay = ChatClient(faulty.stack, token=here.token, after=0)
        try:
            events = replay.drain(2)
        finally:
            replay.close()
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert sorted(e["id"] for e in events if e["type"] == "ack") == sorted(ids)
        assert sorted(e["reply_to"] for e in events if e["type"] == "answer") == sorted(ids)
    finally:
        second.terminate()
        second.wait(timeout=20)


def test_a_message_sent_while_the_database_is_locked_is_answered_once_when_it_is_free(faulty: Faults) -> None:
    client = ChatClient(faulty.stack)
    database = sqlite3.connect(Path(faulty.stack.env["TANDEM_DATA_DIR"]) / "tandem.sqlite3", timeout=30)
    try:
        database.execute("BEGIN EXCLUSIVE")
        client.ask("l1", ROUTINE[0])
        # The server keeps serving while its database is locked: nothing waits on the event loop.
        started = time.monotonic()
        assert httpx.get(faulty.stack.http + "/health/", timeout=5).status_code == 200
        assert time.monotonic() - started < 2
        time.sleep(3)
        assert not [f for f in client.frames if f.get("reply_to") == "l1" or f.get("id") == "l1"]
    finally:
        database.rollback()
        database.close()
    try:
        client.wait_for(lambda f: f["type"] == "answer" and f["reply_to"] == "l1", timeout=20)
        client.drain(1)
        assert len([f for f in client.frames if f["type"] == "answer" and f["reply_to"] == "l1"]) == 1
        assert not [f for f in client.frames if f["type"] == "error"]
    finally:
        client.close()


def test_one_address_opening_conversation_after_conversation_gets_ten_large_model_jobs(faulty: Faults) -> None:
    # The default budget (TANDEM_LIMIT_ADDRESS_ESCALATIONS): 10 large-model jobs an address per 10 minutes.
    address = new_address()
    destinations = []
    for number in range(11):
        client = ChatClient(faulty.stack, address=address)
        try:
            client.ask(f"e{number}", HARD[number % len(HARD)])
            told = client.wait_for(lambda f: f["type"] == "escalated")
            destinations.append((told["destination"], told["reason"]))
        finally:
            client.close()
    assert all(destination == "large" for destination, _ in destinations[:10])
    assert destinations[10] == ("people", "escalation_limit")

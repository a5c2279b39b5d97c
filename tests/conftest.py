"""Shared fixtures: the people who use Tandem, and a small model trained once per test run."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from chatbot.policy import Thresholds
from chatbot.routing import Incoming, route_many, unavailable
from chatbot.small import model as small_model
from support.conversations import actions
from support.knowledge import loader


@pytest.fixture
def agent(db: None) -> User:
    """A support agent (the Agents group), not an admin."""
    from support.review.roles import make_agent

    return make_agent(User.objects.create_user("agent", password="agent-pw", first_name="Alex"))


@pytest.fixture
def other_agent(db: None) -> User:
    from support.review.roles import make_agent

    return make_agent(User.objects.create_user("other-agent", password="other-pw", first_name="Sam"))


@pytest.fixture
def admin_user(db: None) -> User:
    """The manager who runs the console."""
    return User.objects.create_superuser("admin", password="admin-pw")


@pytest.fixture
def visitor(db: None) -> User:
    """Somebody with an account but no staff rights (customers chat anonymously)."""
    return User.objects.create_user("visitor", password="visitor-pw")


def demo_examples() -> list[tuple[str, str]]:
    articles = loader.load_file(loader.DEMO_FILE)
    return loader.examples_from(articles)


# Where TANDEM_TEST_MODEL_CACHE names a folder, the trained model is kept there, under a key of what it
# was trained from and with (the demo knowledge base and its loader, the chatbot library's code with its
# built-in intents, this file, the pinned requirements), and later runs take a copy instead of training
# again: CI runs three parts of the suite at once (.ci/run), and only the first trains.
_ROOT = Path(__file__).resolve().parents[1]
MODEL_INPUTS = [
    loader.DEMO_FILE,
    _ROOT / "support" / "knowledge" / "loader.py",
    Path(__file__).resolve(),
    *sorted((_ROOT / "chatbot").rglob("*.py")),
    *(_ROOT / name for name in ("requirements.txt", "requirements-models.txt")),
]


def _train_or_copy(directory: Path) -> None:
    cache = os.environ.get("TANDEM_TEST_MODEL_CACHE")
    if not cache:
        small_model.train(demo_examples(), directory, epochs=2)
        return
    digest = hashlib.sha256()
    for path in MODEL_INPUTS:
        digest.update(Path(path).read_bytes())
    root = Path(cache)
    root.mkdir(parents=True, exist_ok=True)
    kept = root / digest.hexdigest()[:16]
    with (root / "lock").open("w") as lock:
        # Two runs at once: the second waits for the first one's model.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not kept.exists():
            building = root / f"{kept.name}.building"
            shutil.rmtree(building, ignore_errors=True)
            small_model.train(demo_examples(), building, epochs=2)
            building.rename(kept)
    shutil.rmtree(directory)
    shutil.copytree(kept, directory)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small model trained on the demo knowledge base as the product trains it, encoder fine-tuned,
    once for the whole run (about a minute), or a copy of the one a run before trained (MODEL_INPUTS)."""
    directory = tmp_path_factory.mktemp("small-model")
    _train_or_copy(directory)
    return directory


@pytest.fixture
def small_model_dir(trained_model_dir: Path) -> Iterator[Path]:
    with override_settings(TANDEM_SMALL_MODEL_DIR=trained_model_dir):
        yield trained_model_dir


@pytest.fixture
def knowledge_base(db: None) -> None:
    loader.store(loader.load_file(loader.DEMO_FILE))


def post_as_server(conversation_id: object, client_id: str, text: str, socket: str | None = None) -> actions.Posted:
    """Post a customer's message the way the chat socket does: route it (unless people own the
    conversation), then store it and act on the route."""
    import uuid

    assert isinstance(conversation_id, uuid.UUID)
    context = actions.routing_context(conversation_id)
    routed = None
    if context.bot_answers:
        try:
            routed = route_many(small_model.get_small_model(), [Incoming(text, context.language)])[0]
        except small_model.ModelNotTrained:
            routed = unavailable(Thresholds.current())
    return actions.post_customer_message(conversation_id, client_id, text, routed, socket)


@pytest.fixture
def frames() -> Iterator[list[dict[str, Any]]]:
    """Every frame broadcast to customers' sockets; staff notices and queued tasks are dropped."""
    sent: list[dict[str, Any]] = []
    with (
        mock.patch(
            "support.conversations.broadcast.send_to_conversation",
            side_effect=lambda _id, *frames, skip=None: sent.extend(frames),
        ),
        mock.patch("support.conversations.broadcast.send_to_staff"),
        mock.patch("support.conversations.tasks.answer_with_large_model.delay"),
    ):
        yield sent


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (the embedded one the run command starts) for the unit tests that need one."""
    from tests.integration.conftest import embedded_redis

    process, url = embedded_redis(tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()
    process.wait(timeout=10)

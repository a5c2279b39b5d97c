"""Retraining on agents' labels: a candidate trained, compared on held-out labels, promoted or discarded,
and an earlier model served again."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from chatbot.small import model as small_model
from chatbot.small import versions
from chatbot.smalltalk import with_small_talk
from support.conversations import actions
from support.conversations.models import Conversation, Message, Role
from support.knowledge import retraining
from support.knowledge.loader import training_examples
from support.knowledge.models import TrainingRun, TrainingState
from support.review.models import Label, LabelKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_dir(trained_model_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the session's trained model folder: these tests add, promote and delete models."""
    directory = tmp_path / "models"
    shutil.copytree(trained_model_dir, directory)
    with override_settings(TANDEM_SMALL_MODEL_DIR=directory):
        yield directory


def labelled(text: str, kind: str, article: str = "", message_id: int | None = None) -> Message:
    conversation = Conversation.objects.create()
    message = Message.objects.create(
        **({"id": message_id} if message_id else {}), conversation=conversation, role=Role.CUSTOMER, text=text
    )
    Label.objects.create(message=message, kind=kind, article=article, given_at=timezone.now())
    return message


def test_one_label_in_five_is_held_out_by_message_id_and_new_topics_only_count_in_comparisons(
    knowledge_base: None,
) -> None:
    labelled("my parcel has not come", LabelKind.ARTICLE, "late-delivery", message_id=10)
    labelled("where is my stuff", LabelKind.ARTICLE, "late-delivery", message_id=11)
    labelled("do you sell bikes", LabelKind.NEW_TOPIC, message_id=12)
    labelled("what is the weather", LabelKind.NOT_SUPPORT, message_id=15)
    labelled("the old article", LabelKind.ARTICLE, "an-article-since-deleted", message_id=16)
    train, held = retraining.labelled_rows()
    assert train == [("where is my stuff", "late-delivery")]
    assert held == [("my parcel has not come", "late-delivery"), ("what is the weather", "")]


@pytest.fixture
def labels(knowledge_base: None) -> None:
    rows = [
        ("my sofa arrived with a tear", "damaged-on-arrival"),
        ("my order never showed up", "late-delivery"),
        ("how do i send back a lamp", "how-to-return"),
        ("can i pay in three parts", "pay-later-instalments"),
        ("my card was refused at checkout", "card-declined"),
    ]
    for number in range(20):
        text, slug = rows[number % len(rows)]
        labelled(f"{text} ({number})", LabelKind.ARTICLE, slug, message_id=100 + number)
    labelled("do you sell bicycles", LabelKind.NEW_TOPIC, message_id=200)


def test_a_run_trains_a_candidate_that_does_not_serve_until_an_admin_promotes_it(
    labels: None, model_dir: Path, admin_user: User
) -> None:
    serving = small_model.current_version(model_dir)
    run = TrainingRun.objects.create(started_by=admin_user)
    out = io.StringIO()
    call_command("train_small_model", "--run", str(run.pk), stdout=out)
    run.refresh_from_db()
    assert run.state == TrainingState.TRAINED, run.error
    assert run.labels_used == 16 and run.figures["held_out"] == 5 and run.compared_with == serving
    for side in ("candidate", "current"):
        figures = run.figures[side]
        assert figures["rows"] == 5 and 0 <= figures["coverage"] <= 1 and 0 <= figures["accuracy"] <= 1
    assert small_model.current_version(model_dir) == serving, "a candidate does not serve by itself"
    assert run.version in {meta["version"] for meta in versions.versions(model_dir)}
    assert not list(model_dir.glob(".training-*")), "the staging folder is gone"
    # Running the same run again does nothing.
    assert retraining.run(run.pk).version == run.version

    retraining.promote(run.pk, admin_user)
    assert small_model.current_version(model_dir) == run.version
    run.refresh_from_db()
    assert run.state == TrainingState.PROMOTED and run.decided_by == admin_user
    # And back: the earlier model serves again.
    retraining.roll_back(serving, admin_user)
    assert small_model.current_version(model_dir) == serving


def test_a_candidate_can_be_discarded_but_the_serving_model_cannot(
    labels: None, model_dir: Path, admin_user: User
) -> None:
    run = retraining.run(TrainingRun.objects.create(started_by=admin_user).pk)
    assert run.state == TrainingState.TRAINED
    serving = small_model.current_version(model_dir)
    assert serving is not None
    with pytest.raises(versions.VersionError, match="cannot be discarded"):
        versions.discard(serving, model_dir)
    retraining.discard(run.pk, admin_user)
    assert not (model_dir / run.version).exists()
    assert TrainingRun.objects.get(pk=run.pk).state == TrainingState.DISCARDED
    with pytest.raises(actions.ConversationError, match="not waiting"):
        retraining.promote(run.pk, admin_user)


def test_a_failed_training_says_why_and_the_serving_model_stays(
    knowledge_base: None, model_dir: Path, admin_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = small_model.current_version(model_dir)

    def broken(*_: Any, **__: Any) -> Path:
        raise MemoryError("out of memory")

    monkeypatch.setattr(small_model, "train", broken)
    monkeypatch.setattr(small_model, "refit_head", broken)
    for full in (False, True):
        run = retraining.run(TrainingRun.objects.create(started_by=admin_user, full=full).pk)
        assert run.state == TrainingState.FAILED and "out of memory" in run.error
    assert small_model.current_version(model_dir) == serving
    assert not list(model_dir.glob(".training-*")), "the staging folder is gone"


def test_a_run_refits_only_the_head_on_the_serving_encoder_until_the_examples_have_grown(
    labels: None, model_dir: Path, admin_user: User
) -> None:
    serving = small_model.current_version(model_dir)
    assert serving is not None
    run = retraining.run(TrainingRun.objects.create(started_by=admin_user).pk)
    assert run.state == TrainingState.TRAINED, run.error
    assert run.kind == "head" and run.figures["seconds"] > 0
    refit = (model_dir / run.version / "meta.json").read_text()
    assert f'"refit_from": "{serving}"' in refit
    # The encoder is the serving one's, the same files (hard links where the file system allows).
    served = model_dir / serving / "encoder"
    for file in served.rglob("*"):
        if file.is_file():
            assert (model_dir / run.version / "encoder" / file.relative_to(served)).read_bytes() == file.read_bytes()
    # Examples grown past the setting's factor (here: any examples at all) make the next run a full one.
    with override_settings(TANDEM_RETRAIN_FULL_GROWTH=1.0):
        assert retraining.refit_base(training_examples(), model_dir) is None
    assert retraining.refit_base(training_examples(), model_dir) == model_dir / serving


@override_settings(TANDEM_SMALL_MODEL_EPOCHS=1)
def test_an_admin_may_ask_for_a_full_training_that_fine_tunes_the_encoder_again(
    labels: None, model_dir: Path, admin_user: User
) -> None:
    run = retraining.run(TrainingRun.objects.create(started_by=admin_user, full=True).pk)
    assert run.state == TrainingState.TRAINED, run.error
    assert run.kind == "full"
    meta = (model_dir / run.version / "meta.json").read_text()
    assert "refit_from" not in meta and '"epochs": 1' in meta


def spot_checked(text: str, article: str, message_id: int) -> Message:
    message = labelled(text, LabelKind.ARTICLE, article, message_id=message_id)
    Label.objects.filter(message=message).update(spot_check=True)
    return message


def test_spot_checks_choose_the_thresholds_and_the_models_are_compared_on_them(
    labels: None, model_dir: Path, admin_user: User
) -> None:
    knowledge_base = training_examples()
    assert retraining.calibration_rows(knowledge_base, knowledge_base) is None, "no spot check yet"
    checks = [
        ("my delivery is two weeks late", "late-delivery"),
        ("the lamp came broken", "damaged-on-arrival"),
        ("how can I return this chair", "how-to-return"),
        ("can I split the payment", "pay-later-instalments"),
        ("payment refused on my visa", "card-declined"),
    ]
    # Ids 301-304 train (and choose the thresholds); 300 and 305 are held out (one in five by id).
    for number, (text, article) in enumerate(checks + [("where is my order", "late-delivery")]):
        spot_checked(text, article, 300 + number)
    train, _ = retraining.labelled_rows()
    rows = retraining.calibration_rows(knowledge_base, knowledge_base + train)
    assert rows is not None
    assert {text for text, _ in checks[1:5]} <= rows and checks[0][0] not in rows
    own = {text for text, _ in with_small_talk(knowledge_base)}
    assert rows - {text for text, _ in checks} <= own, "the rest: the knowledge base's (and small talk's) own"

    run = retraining.run(TrainingRun.objects.create(started_by=admin_user).pk)
    assert run.state == TrainingState.TRAINED, run.error
    chosen_by = small_model.SmallModel(model_dir / run.version).meta["policy"]["chosen_by"]
    assert "calibration examples given" in chosen_by
    spot = run.figures["spot_checks"]
    assert spot["rows"] == 2 and spot["candidate"]["rows"] == 2 and spot["current"]["rows"] == 2
    client = Client()
    client.force_login(admin_user)
    page = client.get("/model/").content.decode()
    assert 'data-spot-checks="2"' in page and 'data-kind="head"' in page
    assert "6 checked" in page


def test_only_an_admin_starts_one_training_at_a_time(
    knowledge_base: None, model_dir: Path, admin_user: User, agent: User, django_capture_on_commit_callbacks: Any
) -> None:
    with pytest.raises(actions.ConversationError, match="Only an admin"):
        retraining.start(agent)
    with mock.patch("support.knowledge.tasks.train_candidate.delay") as queued:
        with django_capture_on_commit_callbacks(execute=True):
            run = retraining.start(admin_user)
        queued.assert_called_once_with(run.pk)
        with pytest.raises(actions.ConversationError, match="already running"):
            retraining.start(admin_user)


def test_the_model_page_shows_runs_kept_models_and_labels_to_admins(
    labels: None, model_dir: Path, admin_user: User
) -> None:
    run = retraining.run(TrainingRun.objects.create(started_by=admin_user).pk)
    client = Client()
    client.force_login(admin_user)
    page = client.get("/model/").content.decode()
    assert f'data-run="{run.pk}"' in page and "data-promote" in page
    assert page.count("data-version=") == len(versions.versions(model_dir))
    assert "Agents have labelled <strong>21</strong>" in page
    response = client.post("/model/promote/", {"run": run.pk}, follow=True)
    assert "serves now" in response.content.decode()
    assert small_model.current_version(model_dir) == run.version


def test_new_topic_messages_are_grouped_by_what_they_ask_and_one_group_becomes_an_article(
    knowledge_base: None, small_model_dir: Path, admin_user: User, agent: User
) -> None:
    from support.knowledge import topics
    from support.knowledge.loader import training_examples

    asked = [
        "do you sell bicycles",
        "can I buy a bike from you",
        "have you got bikes for sale",
        "is there a store in Paris",
        "do you have a shop in France",
    ]
    messages = [labelled(text, LabelKind.NEW_TOPIC) for text in asked]
    found = topics.new_topics()
    grouped = sorted(sorted(topic.texts) for topic in found)
    assert grouped == [sorted(asked[:3]), sorted(asked[3:])]
    bikes = next(topic for topic in found if "do you sell bicycles" in topic.texts)
    with pytest.raises(actions.ConversationError, match="Only an admin"):
        topics.article_from_topic(agent, bikes.message_ids, "Do you sell bikes?", "Not yet.")
    article = topics.article_from_topic(admin_user, bikes.message_ids, "Do you sell bikes?", "Not yet, sorry.")
    assert article.slug == "do-you-sell-bikes"
    assert ("can I buy a bike from you", "do-you-sell-bikes") in training_examples()
    relabelled = Label.objects.filter(message__in=messages[:3])
    assert {(label.kind, label.article, label.given_by_id) for label in relabelled} == {
        (LabelKind.ARTICLE, "do-you-sell-bikes", admin_user.pk)
    }
    assert [sorted(topic.texts) for topic in topics.new_topics()] == [sorted(asked[3:])]
    with pytest.raises(actions.ConversationError, match="exists already"):
        topics.article_from_topic(admin_user, [messages[3].pk], "Do you sell bikes?", "Again.")

"""Retraining the small model on the knowledge base plus agents' labels: a candidate is trained in the
background, compared with the model serving on labelled traffic neither was trained on, and an admin
promotes it (every server process picks it up within seconds) or discards it; a kept older model can be
served again (rolled back).

One label in HELD_OUT_EVERY (by message id, so it stays held out from run to run) is never trained on:
it is what the candidate and the current model are compared on. Labels for "new topic" and "not a
support question" train nothing (no article answers them) but count in the comparison as questions the
small model should not answer.

A run refits only the head (classifier, nearest-example vote, thresholds) on the serving model's
fine-tuned encoder, in seconds, until the examples have grown TANDEM_RETRAIN_FULL_GROWTH times since that
encoder was fine-tuned; then (or when the admin asks) it fine-tunes again, in minutes. Once agents have
spot-checked some of the small tier's answers (support/review/checks.py), the thresholds are chosen on
those checks and the knowledge base's own calibration rows only, never on escalations: agents' labels of
escalated messages are the ones the model was unsure of, and never its confident mistakes, so as they
pile up they stop looking like traffic (bench/learning_loop.py --audit-share shows the difference).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chatbot.small import model as small_model
from chatbot.small import versions
from chatbot.smalltalk import with_small_talk
from support.conversations.actions import ConversationError
from support.knowledge.loader import training_examples
from support.knowledge.models import Article, TrainingRun, TrainingState
from support.permissions import is_admin
from support.review.models import Label, LabelKind

logger = logging.getLogger(__name__)

HELD_OUT_EVERY = 5
# A run whose training process reported nothing for this long has died.
STALLED_SECONDS = 900

Progress = Callable[[str], None]


def labelled_rows() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training rows, held-out rows) from the agents' labels: (text, article slug); held-out rows have
    "" for a message no article answers. Labels naming an article since deleted are left out."""
    slugs = set(Article.objects.values_list("slug", flat=True))
    train: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for message_id, text, kind, article in Label.objects.order_by("message_id").values_list(
        "message_id", "message__text", "kind", "article"
    ):
        if kind == LabelKind.ARTICLE and article not in slugs:
            continue
        label = article if kind == LabelKind.ARTICLE else ""
        if message_id % HELD_OUT_EVERY == 0:
            held.append((text, label))
        elif label:
            train.append((text, label))
    return train, held


def spot_checked() -> set[str]:
    """The texts of spot-checked messages among the training rows (an article answers them)."""
    return {
        text
        for message_id, text in Label.objects.filter(spot_check=True, kind=LabelKind.ARTICLE).values_list(
            "message_id", "message__text"
        )
        if message_id % HELD_OUT_EVERY != 0
    }


def held_out_spot_checks() -> list[tuple[str, str]]:
    """The held-out labels given in spot checks (random traffic): (text, article slug or "")."""
    return [
        (text, article if kind == LabelKind.ARTICLE else "")
        for message_id, text, kind, article in Label.objects.filter(spot_check=True)
        .order_by("message_id")
        .values_list("message_id", "message__text", "kind", "article")
        if message_id % HELD_OUT_EVERY == 0
    ]


def calibration_rows(knowledge_base: list[tuple[str, str]], examples: list[tuple[str, str]]) -> set[str] | None:
    """The texts to choose the router's thresholds on: the spot checks among `examples` and the rows of
    the knowledge base a training keeps aside (the same split); None (training's own choice) until
    agents have spot-checked an answer."""
    given = {text for text, _ in examples}
    checked = spot_checked() & given
    if not checked:
        return None
    base = with_small_talk(knowledge_base)
    held = small_model.calibration_split(np.array([label for _, label in base]), settings.TANDEM_CALIBRATION_SHARE)
    return checked | {text for (text, _), keep in zip(base, held, strict=True) if keep}


def refit_base(examples: list[tuple[str, str]], directory: Path) -> Path | None:
    """The serving model, when a head refit on its fine-tuned encoder is enough for these examples;
    None when a full training is due: no model, an encoder never fine-tuned (a frozen encoder's model is
    all head; or one trained before refits recorded what it was tuned on), or examples grown
    TANDEM_RETRAIN_FULL_GROWTH times since."""
    version = small_model.current_version(directory)
    if version is None:
        return None
    record = directory / version / "encoder" / small_model.TUNED_ON_FILE
    if not record.exists():
        return None
    tuned = len(json.loads(record.read_text())["texts"])
    if len(with_small_talk(examples)) >= settings.TANDEM_RETRAIN_FULL_GROWTH * tuned:
        return None
    return directory / version


def _admin(user: User) -> None:
    if not is_admin(user):
        raise ConversationError("not_an_admin", "Only an admin retrains the small model.")


def start(admin: User, full: bool = False) -> TrainingRun:
    """Queue a retraining (one at a time); `full` fine-tunes the encoder again whatever the data."""
    from support.knowledge.tasks import train_candidate

    _admin(admin)
    with transaction.atomic():
        busy = TrainingRun.objects.select_for_update().filter(
            state__in=[TrainingState.QUEUED, TrainingState.RUNNING],
            created_at__gte=timezone.now() - timedelta(seconds=STALLED_SECONDS),
        )
        if busy.exists():
            raise ConversationError("training_busy", "A training is already running: wait for it to finish.")
        run = TrainingRun.objects.create(started_by=admin, full=full)
        transaction.on_commit(lambda: train_candidate.delay(run.pk), robust=True)
    return run


def spawn(run_id: int) -> subprocess.Popen[bytes]:
    """Train in a process of its own (`manage.py train_small_model --run`), so that the worker that
    started it goes on with its other tasks."""
    manage = Path(settings.BASE_DIR) / "manage.py"
    process = subprocess.Popen(
        [sys.executable, str(manage), "train_small_model", "--run", str(run_id)],
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Reaped when it ends, so that no finished training lingers as a zombie of the worker.
    threading.Thread(target=process.wait, name=f"training-run-{run_id}", daemon=True).start()
    return process


def _say(run_id: int, step: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(progress=step[:300], heartbeat_at=timezone.now())


def run(run_id: int, progress: Progress | None = None) -> TrainingRun:
    """Train the candidate of a queued run, keep it beside the others without serving it, and compare
    it with the model serving now. Does nothing for a run that is not queued."""
    claimed = TrainingRun.objects.filter(pk=run_id, state=TrainingState.QUEUED).update(
        state=TrainingState.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return TrainingRun.objects.get(pk=run_id)

    def say(step: str) -> None:
        _say(run_id, step)
        if progress:
            progress(step)

    directory = Path(settings.TANDEM_SMALL_MODEL_DIR)
    staging = directory / f".training-{run_id}"
    full = TrainingRun.objects.filter(pk=run_id).values_list("full", flat=True).get()
    began = time.monotonic()
    try:
        train, held = labelled_rows()
        knowledge_base = training_examples()
        examples = knowledge_base + train
        calibration = calibration_rows(knowledge_base, examples)
        chosen_on = f"thresholds on {len(calibration)} spot-checked and calibration rows" if calibration else ""
        base = None if full else refit_base(examples, directory)
        if base is not None:
            kind = "head"
            say(f"Refitting the head on {base.name}'s encoder: {len(examples)} examples ({len(train)} from labels)")
            folder = small_model.refit_head(examples, base, staging, progress=say, calibration=calibration)
        else:
            kind = "full"
            say(f"Training on {len(examples)} examples ({len(train)} from agents' labels)")
            folder = small_model.train(examples, staging, progress=say, calibration=calibration)
        if chosen_on:
            say(chosen_on)
        version = versions.adopt(folder, directory)
        say("Comparing with the model serving now")
        figures = compare(version, held, directory)
        figures["seconds"] = round(time.monotonic() - began, 1)
    except Exception as error:  # noqa: BLE001 - whatever failed, the run says so and the model serving stays
        logger.exception("Training run %s failed", run_id)
        TrainingRun.objects.filter(pk=run_id).update(
            state=TrainingState.FAILED, finished_at=timezone.now(), error=f"{type(error).__name__}: {error}"[:500]
        )
        return TrainingRun.objects.get(pk=run_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    TrainingRun.objects.filter(pk=run_id).update(
        state=TrainingState.TRAINED,
        finished_at=timezone.now(),
        version=version,
        kind=kind,
        compared_with=figures["current_version"] or "",
        examples=len(examples),
        labels_used=len(train),
        figures=figures,
        progress="Trained: compare the figures, then promote or discard it",
    )
    waiting = set(TrainingRun.objects.filter(state=TrainingState.TRAINED).values_list("version", flat=True))
    versions.prune(directory, protect=waiting)
    return TrainingRun.objects.get(pk=run_id)


def compare(version: str, held: list[tuple[str, str]], directory: Path) -> dict[str, Any]:
    """The candidate's and the serving model's figures on the held-out labels, and the candidate's own
    held-out figures from training (rows of its training data it was not fitted on)."""
    candidate = small_model.SmallModel(directory / version)
    current_version = small_model.current_version(directory)
    figures: dict[str, Any] = {
        "held_out": len(held),
        "current_version": current_version,
        "candidate": versions.score_labelled(candidate, held),
        "candidate_training": candidate.meta.get("metrics", {}),
        "current": None,
    }
    checks = held_out_spot_checks()
    current = None
    if current_version and current_version != version:
        current = small_model.SmallModel(directory / current_version)
        figures["current"] = versions.score_labelled(current, held)
        figures["current_training"] = current.meta.get("metrics", {})
    if checks:
        # Random traffic, unlike the escalations among the held-out labels: the figures to trust most.
        figures["spot_checks"] = {
            "rows": len(checks),
            "candidate": versions.score_labelled(candidate, checks),
            "current": versions.score_labelled(current, checks) if current else None,
        }
    return figures


def _decided(run_id: int, admin: User, state: TrainingState) -> TrainingRun:
    TrainingRun.objects.filter(pk=run_id).update(state=state, decided_by=admin)
    return TrainingRun.objects.get(pk=run_id)


def _trained(run_id: int) -> TrainingRun:
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise ConversationError("no_such_run", "There is no such training run.")
    if run.state != TrainingState.TRAINED:
        raise ConversationError("run_not_trained", f"This run is {run.get_state_display().lower()}, not waiting.")
    return run


def promote(run_id: int, admin: User) -> TrainingRun:
    """Serve the run's candidate from now on."""
    _admin(admin)
    run = _trained(run_id)
    try:
        versions.make_current(run.version)
    except versions.VersionError as error:
        raise ConversationError("no_such_model", str(error)) from None
    return _decided(run_id, admin, TrainingState.PROMOTED)


def discard(run_id: int, admin: User) -> TrainingRun:
    """Delete the run's candidate; the model serving stays."""
    _admin(admin)
    run = _trained(run_id)
    try:
        versions.discard(run.version)
    except versions.VersionError as error:
        raise ConversationError("cannot_discard", str(error)) from None
    return _decided(run_id, admin, TrainingState.DISCARDED)


def roll_back(version: str, admin: User) -> None:
    """Serve a kept earlier model again."""
    _admin(admin)
    try:
        versions.make_current(version)
    except versions.VersionError as error:
        raise ConversationError("no_such_model", str(error)) from None
    logger.info("%s made small model %s current", admin.get_username(), version)

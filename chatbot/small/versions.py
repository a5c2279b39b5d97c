"""The small model's artefacts side by side: which are kept, which one serves (the `current` pointer that
every server process re-reads within seconds), adopting a candidate trained elsewhere without serving
it, and scoring a model on labelled traffic with the policy it ships with."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from chatbot.policy import Thresholds
from chatbot.routing import Incoming, route_many
from chatbot.small.model import SmallModel, current_version


class VersionError(ValueError):
    """A version that does not exist, or may not be changed that way."""


def _directory(directory: Path | None) -> Path:
    return Path(directory or settings.TANDEM_SMALL_MODEL_DIR)


def versions(directory: Path | None = None) -> list[dict[str, Any]]:
    """The kept artefacts' metadata, newest first, each with "current" (whether it serves)."""
    directory = _directory(directory)
    current = current_version(directory)
    found = []
    if directory.exists():
        for folder in directory.iterdir():
            meta_file = folder / "meta.json"
            if folder.is_dir() and meta_file.exists():
                meta = json.loads(meta_file.read_text())
                meta["current"] = folder.name == current
                found.append(meta)
    return sorted(found, key=lambda meta: str(meta["version"]), reverse=True)


def _folder(version: str, directory: Path) -> Path:
    if not version or "/" in version or version.startswith("."):
        raise VersionError(f"no small model {version!r}")
    folder = directory / version
    if not (folder / "meta.json").exists():
        raise VersionError(f"no small model {version!r} in {directory}")
    return folder


def make_current(version: str, directory: Path | None = None) -> None:
    """Serve `version` from now on (promote a candidate, or roll back to an older one)."""
    directory = _directory(directory)
    _folder(version, directory)
    pointer = directory / "current"
    staging = directory / f".current-{os.getpid()}"
    staging.write_text(version)
    # Atomic: a server process reading the pointer sees the old version or the new one.
    staging.replace(pointer)


def adopt(folder: Path, directory: Path | None = None) -> str:
    """Move an artefact trained in another folder in beside the others, without serving it."""
    directory = _directory(directory)
    if not (folder / "meta.json").exists():
        raise VersionError(f"{folder} holds no trained small model")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / folder.name
    if target.exists():
        raise VersionError(f"a small model {folder.name} exists already")
    shutil.move(str(folder), str(target))
    return folder.name


def discard(version: str, directory: Path | None = None) -> None:
    """Delete a kept artefact that does not serve."""
    directory = _directory(directory)
    folder = _folder(version, directory)
    if current_version(directory) == version:
        raise VersionError("the model that serves cannot be discarded: promote another first")
    shutil.rmtree(folder)


def prune(directory: Path | None = None, keep: int | None = None, protect: set[str] | None = None) -> list[str]:
    """Delete all but the newest `keep` artefacts (default TANDEM_SMALL_MODEL_KEEP), never the current one
    nor those in `protect` (candidates waiting for a decision). Returns the versions deleted."""
    directory = _directory(directory)
    keep = settings.TANDEM_SMALL_MODEL_KEEP if keep is None else keep
    spared = {current_version(directory), *(protect or set())}
    deleted = []
    for meta in versions(directory)[keep:]:
        if meta["version"] not in spared:
            shutil.rmtree(directory / str(meta["version"]), ignore_errors=True)
            deleted.append(str(meta["version"]))
    return deleted


def score_labelled(model: SmallModel, rows: list[tuple[str, str]]) -> dict[str, Any]:
    """Route (text, label) rows as the live server would, with the model's own policy: label "" means no
    article answers it (the small model should not). Coverage is the share it answers; answered
    accuracy, how many of those it got right."""
    if not rows:
        return {"rows": 0, "coverage": None, "answered_accuracy": None, "accuracy": None}
    assert model.policy is not None
    thresholds = Thresholds.current(model.policy)
    routed = []
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        routed.extend(route_many(model, [Incoming(text) for text, _ in chunk], thresholds))
    answered = right = 0
    for (_, label), result in zip(rows, routed, strict=True):
        if result.route.answer:
            answered += 1
            if label and result.prediction is not None and result.prediction.intent == label:
                right += 1
    escalated_right = sum(
        1 for (_, label), result in zip(rows, routed, strict=True) if not label and not result.route.answer
    )
    return {
        "rows": len(rows),
        "coverage": answered / len(rows),
        "answered_accuracy": right / answered if answered else None,
        # Right overall: answered with the labelled article, or (no article answers it) escalated.
        "accuracy": (right + escalated_right) / len(rows),
    }

"""Training, storing and loading the small model's classifier.

An artefact is a folder `<TANDEM_SMALL_MODEL_DIR>/<version>/` holding `weights.npz` (the linear
classifier and the normalised embeddings of its training examples) and `meta.json` (data fingerprint,
metrics, date). The file `current` names the version in use; servers notice a new one without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from chatbot.small import classifier
from chatbot.small.encoder import Encoder, get_encoder

Progress = Callable[[str], None]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    intent: str
    confidence: float
    # Cosine similarity to the closest training example: low means nothing in the knowledge base
    # resembles the question.
    similarity: float
    input_tokens: int


def fingerprint(examples: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for text, label in sorted(examples):
        digest.update(f"{label}\t{text}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Policy:
    """The router's thresholds, chosen at training time and stored with the artefact."""

    confidence_threshold: float
    oos_similarity: float
    chosen_by: str


def choose_policy(embeddings: np.ndarray, labels: np.ndarray) -> tuple[Policy, dict[str, Any]]:
    """Pick the thresholds from out-of-fold predictions on the training data, and report how they did."""
    scores = classifier.out_of_fold_scores(embeddings, labels)
    correct = scores.intents == labels
    if settings.TANDEM_TARGET_ESCALATION_RATE is not None:
        rate = settings.TANDEM_TARGET_ESCALATION_RATE
        threshold = classifier.threshold_for_escalation_rate(scores.confidences, rate)
        chosen_by = f"escalation rate {rate:.0%} on held-out training examples"
    else:
        target = settings.TANDEM_TARGET_ANSWERED_ACCURACY
        threshold = classifier.threshold_for_accuracy(scores.confidences, correct, target)
        chosen_by = f"answered accuracy {target:.1%} on held-out training examples"
    floor = classifier.similarity_floor(scores.similarities, settings.TANDEM_OOS_IN_SCOPE_LOSS)
    answered = (scores.confidences >= threshold) & (scores.similarities >= floor)
    metrics = {
        "holdout_accuracy": round(float(correct.mean()), 4),
        "holdout_coverage": round(float(answered.mean()), 4),
        "holdout_answered_accuracy": round(float(correct[answered].mean()), 4) if answered.any() else None,
    }
    return Policy(round(threshold, 6), round(floor, 6), chosen_by), metrics


def train(
    examples: list[tuple[str, str]],
    directory: Path | None = None,
    *,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train on (text, intent) pairs, write a new artefact and make it current. Returns its folder."""
    if len({label for _, label in examples}) < 2:
        raise ValueError("the small model needs examples of at least two intents")
    say = progress or (lambda message: None)
    directory = directory or settings.TANDEM_SMALL_MODEL_DIR
    encoder = encoder or get_encoder()
    started = time.monotonic()
    texts = [text for text, _ in examples]
    labels = np.array([label for _, label in examples])
    say(f"Embedding {len(texts)} examples with {settings.TANDEM_SMALL_MODEL_NAME}")
    embeddings = encoder.embed(texts, progress=True)
    say("Choosing the router's thresholds from held-out predictions")
    policy, metrics = choose_policy(embeddings, labels)
    say("Fitting the classifier on all examples")
    head = classifier.Classifier.fit(embeddings, labels)

    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(directory) / version
    target.mkdir(parents=True, exist_ok=False)
    head.save(target / "weights.npz")
    meta = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "encoder": settings.TANDEM_SMALL_MODEL_NAME,
        "data_fingerprint": fingerprint(examples),
        "examples": len(examples),
        "intents": len(head.classes),
        "metrics": metrics,
        "policy": asdict(policy),
        "training_seconds": round(time.monotonic() - started, 2),
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2))
    # Written last and atomically, so a server never sees a half-written artefact as current.
    pointer = Path(directory) / "current"
    temporary = pointer.with_suffix(".tmp")
    temporary.write_text(version)
    temporary.replace(pointer)
    say(f"Saved {target}")
    return target


def current_version(directory: Path | None = None) -> str | None:
    pointer = Path(directory or settings.TANDEM_SMALL_MODEL_DIR) / "current"
    try:
        return pointer.read_text().strip() or None
    except FileNotFoundError:
        return None


def current_meta(directory: Path | None = None) -> dict[str, Any] | None:
    directory = Path(directory or settings.TANDEM_SMALL_MODEL_DIR)
    version = current_version(directory)
    if version is None:
        return None
    meta: dict[str, Any] = json.loads((directory / version / "meta.json").read_text())
    return meta


class SmallModel:
    def __init__(self, folder: Path, encoder: Encoder) -> None:
        self.version = folder.name
        self.meta = json.loads((folder / "meta.json").read_text())
        self.head = classifier.Classifier.load(folder / "weights.npz")
        self.policy = Policy(**self.meta["policy"]) if "policy" in self.meta else None
        self.encoder = encoder

    def predict(self, text: str) -> Prediction:
        return self.predict_many([text])[0]

    def predict_many(self, texts: list[str]) -> list[Prediction]:
        scores = self.head.score(self.encoder.embed(texts))
        tokens = self.encoder.count_tokens_many(texts)
        return [
            Prediction(str(intent), float(confidence), float(similarity), count)
            for intent, confidence, similarity, count in zip(
                scores.intents, scores.confidences, scores.similarities, tokens, strict=True
            )
        ]

    def nearest_intents(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k intents whose closest example is most similar to the vector, best first."""
        best: dict[str, float] = {}
        similarities = (self.head.examples @ vector).tolist()
        for label, similarity in zip(self.head.example_labels.tolist(), similarities, strict=True):
            if similarity > best.get(label, -2.0):
                best[label] = similarity
        return sorted(best.items(), key=lambda item: item[1], reverse=True)[:k]


class ModelNotTrained(RuntimeError):
    pass


_lock = threading.Lock()
_loaded: SmallModel | None = None
_checked_at = 0.0
RELOAD_CHECK_SECONDS = 2.0


def get_small_model() -> SmallModel:
    """The current artefact, reloaded when a newer one has been trained (checked every few seconds)."""
    global _loaded, _checked_at
    now = time.monotonic()
    if _loaded is not None and now - _checked_at < RELOAD_CHECK_SECONDS:
        return _loaded
    with _lock:
        _checked_at = now
        directory = Path(settings.TANDEM_SMALL_MODEL_DIR)
        version = current_version(directory)
        if version is None:
            raise ModelNotTrained(f"no small model in {directory}: run `python manage.py train_small_model`")
        if _loaded is None or _loaded.version != version:
            _loaded = SmallModel(directory / version, get_encoder())
        return _loaded


def warm_up_small_model() -> None:
    """Load the encoder and the current artefact, and run one query so the first customer waits for nothing."""
    global warmed_up
    try:
        get_small_model().predict("hello")
    except ModelNotTrained as exc:
        logger.warning("%s", exc)
    warmed_up = True


# Whether this process has finished warming up (reported by the health check).
warmed_up = False

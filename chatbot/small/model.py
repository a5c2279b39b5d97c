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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

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


def _fit(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    # Embeddings are unit vectors, so their dot products are small: a weak penalty (large C) lets the
    # classifier become confident where the examples agree.
    classifier = LogisticRegression(C=20.0, max_iter=2000)
    classifier.fit(embeddings, labels)
    return classifier.coef_.astype(np.float32), classifier.intercept_.astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _holdout_accuracy(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0) -> float | None:
    """Accuracy on one example per intent held out (needs at least 3 examples of every intent)."""
    rng = np.random.default_rng(seed)
    test_idx = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if len(idx) < 3:
            return None
        test_idx.append(rng.choice(idx))
    test = np.zeros(len(labels), dtype=bool)
    test[test_idx] = True
    coef, intercept = _fit(embeddings[~test], labels[~test])
    classes = np.unique(labels[~test])
    predicted = classes[np.argmax(embeddings[test] @ coef.T + intercept, axis=1)]
    return float(np.mean(predicted == labels[test]))


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
    embeddings = encoder.embed(texts)
    say("Measuring accuracy on held-out examples")
    holdout = _holdout_accuracy(embeddings, labels)
    say("Fitting the classifier on all examples")
    coef, intercept = _fit(embeddings, labels)
    classes = np.unique(labels)

    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(directory) / version
    target.mkdir(parents=True, exist_ok=False)
    np.savez(
        target / "weights.npz",
        coef=coef,
        intercept=intercept,
        classes=classes,
        examples=embeddings,
        example_labels=labels,
    )
    meta = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "encoder": settings.TANDEM_SMALL_MODEL_NAME,
        "data_fingerprint": fingerprint(examples),
        "examples": len(examples),
        "intents": len(classes),
        "metrics": {"holdout_accuracy": holdout},
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
        weights = np.load(folder / "weights.npz", allow_pickle=False)
        self.version = folder.name
        self.meta = json.loads((folder / "meta.json").read_text())
        self.coef = weights["coef"]
        self.intercept = weights["intercept"]
        self.classes = [str(c) for c in weights["classes"]]
        self.examples = weights["examples"]
        self.example_labels = [str(label) for label in weights["example_labels"]]
        self.encoder = encoder

    def predict(self, text: str) -> Prediction:
        vector = self.encoder.embed([text])[0]
        return self.predict_vector(vector, self.encoder.count_tokens(text))

    def predict_vector(self, vector: np.ndarray, input_tokens: int = 0) -> Prediction:
        probabilities = _softmax(vector @ self.coef.T + self.intercept)
        best = int(np.argmax(probabilities))
        similarity = float(np.max(self.examples @ vector))
        return Prediction(self.classes[best], float(probabilities[best]), similarity, input_tokens)

    def nearest_intents(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k intents whose closest example is most similar to the vector, best first."""
        best: dict[str, float] = {}
        for label, similarity in zip(self.example_labels, (self.examples @ vector).tolist(), strict=True):
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

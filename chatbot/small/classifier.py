"""The small model's head: a linear classifier over sentence embeddings, its out-of-scope score, and
the thresholds the router uses, chosen from held-out predictions.

Pure numpy/scikit-learn on precomputed embeddings, so training, evaluation and the live path share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Embeddings are unit vectors, so their dot products are small: a weak penalty (large C) lets the
# classifier become confident where the examples agree.
REGULARISATION_C = 20.0
FOLDS = 5


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass
class Scores:
    """Per-row outputs of the head: best intent, its probability, similarity to the nearest example."""

    intents: np.ndarray
    confidences: np.ndarray
    similarities: np.ndarray


@dataclass
class Classifier:
    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray
    # The training examples' embeddings: the nearest one tells how familiar a question is.
    examples: np.ndarray
    example_labels: np.ndarray

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray) -> Classifier:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=REGULARISATION_C, max_iter=3000)
        model.fit(embeddings, labels)
        return cls(
            coef=model.coef_.astype(np.float32),
            intercept=model.intercept_.astype(np.float32),
            classes=model.classes_,
            examples=embeddings.astype(np.float32),
            example_labels=np.asarray(labels),
        )

    def score(self, vectors: np.ndarray) -> Scores:
        probabilities = softmax(vectors @ self.coef.T + self.intercept)
        best = probabilities.argmax(axis=1)
        similarities = (vectors @ self.examples.T).max(axis=1)
        return Scores(self.classes[best], probabilities[np.arange(len(best)), best], similarities)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            coef=self.coef,
            intercept=self.intercept,
            classes=self.classes,
            examples=self.examples,
            example_labels=self.example_labels,
        )

    @classmethod
    def load(cls, path: Path) -> Classifier:
        weights = np.load(path, allow_pickle=False)
        return cls(
            coef=weights["coef"],
            intercept=weights["intercept"],
            classes=weights["classes"].astype(str),
            examples=weights["examples"],
            example_labels=weights["example_labels"].astype(str),
        )


def out_of_fold_scores(embeddings: np.ndarray, labels: np.ndarray, folds: int = FOLDS, seed: int = 0) -> Scores:
    """Each example scored by a classifier that never saw it: honest material for choosing thresholds.

    Folds are stratified by intent; an intent with fewer examples than folds spreads over fewer folds.
    """
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=int)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = np.arange(len(members)) % folds
    intents = np.empty(len(labels), dtype=object)
    confidences = np.zeros(len(labels))
    similarities = np.zeros(len(labels))
    for fold in range(folds):
        held = fold_of == fold
        if not held.any() or len(np.unique(labels[~held])) < 2:
            continue
        scores = Classifier.fit(embeddings[~held], labels[~held]).score(embeddings[held])
        intents[held], confidences[held], similarities[held] = scores.intents, scores.confidences, scores.similarities
    return Scores(intents.astype(str), confidences, similarities)


def risk_coverage(confidences: np.ndarray, correct: np.ndarray, points: int = 20) -> list[list[float]]:
    """[coverage, answered accuracy] when answering the most confident rows first, at `points` coverages."""
    if len(confidences) == 0:
        return []
    order = np.argsort(-confidences, kind="stable")
    cumulative = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    curve = []
    for step in range(1, points + 1):
        answered = max(1, round(len(order) * step / points))
        curve.append([round(answered / len(order), 4), round(float(cumulative[answered - 1]), 4)])
    return curve


def threshold_for_accuracy(confidences: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest confidence threshold at which the answered rows are at least `target` accurate.

    Answering the most confident rows first, find the largest set whose accuracy meets the target; the
    threshold is the confidence of its last row (ties answered together).
    """
    order = np.argsort(-confidences, kind="stable")
    cumulative = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    meets = np.flatnonzero(cumulative >= target)
    if len(meets) == 0:
        return 1.0
    return float(confidences[order][meets.max()])


def threshold_for_escalation_rate(confidences: np.ndarray, rate: float) -> float:
    """The confidence threshold below which a `rate` share of rows falls (so is escalated)."""
    return float(np.quantile(confidences, rate)) if len(confidences) else 0.0


def similarity_floor(similarities: np.ndarray, in_scope_loss: float) -> float:
    """The similarity below which only an `in_scope_loss` share of in-scope questions falls."""
    return float(np.quantile(similarities, in_scope_loss)) if len(similarities) else -1.0

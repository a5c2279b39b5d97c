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
# The head's probabilities are averaged with a vote of the nearest training examples (weighted by
# exp(similarity / temperature)). The two err on different questions: on BANKING77 with the
# fine-tuned encoder the blend was right 1.3 points more often than the head alone (bench/README.md).
NEIGHBOURS = 10
NEIGHBOUR_TEMPERATURE = 0.05
NEIGHBOUR_WEIGHT = 0.5


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
    # Stored with the artefact, so a model is always scored as it was calibrated.
    neighbour_weight: float = NEIGHBOUR_WEIGHT
    neighbours: int = NEIGHBOURS
    neighbour_temperature: float = NEIGHBOUR_TEMPERATURE

    def __post_init__(self) -> None:
        lookup = {label: index for index, label in enumerate(self.classes.tolist())}
        self._example_classes = np.array([lookup[label] for label in self.example_labels.tolist()], dtype=np.int64)

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray) -> Classifier:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=REGULARISATION_C, max_iter=3000)
        model.fit(embeddings, labels)
        coef, intercept = model.coef_, model.intercept_
        if len(model.classes_) == 2:
            # scikit-learn keeps one row for two classes (the second's logit); as two rows, -z/2 and
            # z/2, the softmax gives the same probabilities and every head has one row per class.
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.concatenate([-intercept / 2, intercept / 2])
        return cls(
            coef=coef.astype(np.float32),
            intercept=intercept.astype(np.float32),
            classes=model.classes_,
            examples=embeddings.astype(np.float32),
            example_labels=np.asarray(labels),
        )

    def score(self, vectors: np.ndarray) -> Scores:
        probabilities = softmax(vectors @ self.coef.T + self.intercept)
        similarity = vectors @ self.examples.T
        nearest = similarity.max(axis=1)
        if self.neighbour_weight > 0 and len(self.examples):
            probabilities = (1 - self.neighbour_weight) * probabilities + self.neighbour_weight * self._vote(similarity)
        best = probabilities.argmax(axis=1)
        return Scores(self.classes[best], probabilities[np.arange(len(best)), best], nearest)

    def _vote(self, similarity: np.ndarray) -> np.ndarray:
        """Each row's k nearest examples vote for their intents, closer ones louder."""
        k = min(self.neighbours, similarity.shape[1])
        rows = np.arange(len(similarity))[:, None]
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        top_similarity = similarity[rows, top]
        weights = np.exp((top_similarity - top_similarity.max(axis=1, keepdims=True)) / self.neighbour_temperature)
        votes = np.zeros((len(similarity), len(self.classes)), dtype=np.float64)
        np.add.at(votes, (np.broadcast_to(rows, top.shape), self._example_classes[top]), weights)
        return votes / votes.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            coef=self.coef,
            intercept=self.intercept,
            classes=self.classes,
            examples=self.examples,
            example_labels=self.example_labels,
            neighbour_weight=self.neighbour_weight,
            neighbours=self.neighbours,
            neighbour_temperature=self.neighbour_temperature,
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
            # Artefacts from before the neighbour vote were calibrated on the head alone.
            neighbour_weight=float(weights["neighbour_weight"]) if "neighbour_weight" in weights else 0.0,
            neighbours=int(weights["neighbours"]) if "neighbours" in weights else NEIGHBOURS,
            neighbour_temperature=(
                float(weights["neighbour_temperature"]) if "neighbour_temperature" in weights else NEIGHBOUR_TEMPERATURE
            ),
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


def held_out_scores(
    embeddings: np.ndarray, labels: np.ndarray, held: np.ndarray, folds: int = FOLDS, seed: int = 0
) -> Scores:
    """The rows in the mask `held`, each scored by a classifier fitted on every other row: the rows
    outside `held` are in every fold's training data, and `held` is split into stratified folds.

    For choosing thresholds on the rows a fine-tuned encoder never saw (those it saw sit unrealistically
    close to their intent's other examples), while the classifier still learns from all of them. Scores
    are in `held`'s row order."""
    held = np.asarray(held, dtype=bool)
    rows = np.flatnonzero(held)
    rng = np.random.default_rng(seed)
    fold_of = np.full(len(labels), -1)
    for label in np.unique(labels[rows]):
        members = rng.permutation(rows[labels[rows] == label])
        fold_of[members] = np.arange(len(members)) % folds
    intents = np.empty(len(labels), dtype=object)
    confidences = np.zeros(len(labels))
    similarities = np.zeros(len(labels))
    intents[:] = ""
    for fold in range(folds):
        scored = fold_of == fold
        if not scored.any() or len(np.unique(labels[~scored])) < 2:
            continue
        scores = Classifier.fit(embeddings[~scored], labels[~scored]).score(embeddings[scored])
        intents[scored], confidences[scored], similarities[scored] = (
            scores.intents,
            scores.confidences,
            scores.similarities,
        )
    return Scores(intents[held].astype(str), confidences[held], similarities[held])


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


def threshold_for_accuracy(
    confidences: np.ndarray, correct: np.ndarray, target: float, confidence: float = 0.0
) -> float:
    """The lowest confidence threshold at which the answered rows are at least `target` accurate.

    Answering the most confident rows first, find the largest set whose accuracy meets the target; the
    threshold is the confidence of its last row (ties answered together). 1.0 (answer nothing) when no
    set does.

    With `confidence` 0 the set's accuracy is its point estimate (the share of it that is right), which
    is optimistic: the lowest threshold that reaches the target on a few hundred rows is where their
    noise flatters. Above 0 it is the one-sided lower confidence bound at that level instead
    (`accuracy_lower_bound`): a set qualifies only if its accuracy is at least `target` with that
    confidence, so small sets need to be more than `target` right.
    """
    order = np.argsort(-confidences, kind="stable")
    hits = np.cumsum(correct[order])
    answered = np.arange(1, len(order) + 1)
    accuracy = accuracy_lower_bound(hits, answered, confidence) if confidence > 0 else hits / answered
    meets = np.flatnonzero(accuracy >= target)
    if len(meets) == 0:
        return 1.0
    return float(confidences[order][meets.max()])


def accuracy_lower_bound(hits: np.ndarray, rows: np.ndarray, confidence: float) -> np.ndarray:
    """The one-sided Clopper–Pearson lower bound on the accuracy of `rows` answers of which `hits` were
    right: the accuracy is at least this with probability `confidence` (exact, so never too generous)."""
    from scipy.stats import beta  # scikit-learn's dependency: always installed with it

    hits = np.asarray(hits, dtype=float)
    rows = np.asarray(rows, dtype=float)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - confidence, hits, rows - hits + 1)
    return np.where(hits > 0, bound, 0.0)


def threshold_for_escalation_rate(confidences: np.ndarray, rate: float) -> float:
    """The confidence threshold below which a `rate` share of rows falls (so is escalated)."""
    return float(np.quantile(confidences, rate)) if len(confidences) else 0.0


def similarity_floor(similarities: np.ndarray, in_scope_loss: float) -> float:
    """The similarity below which only an `in_scope_loss` share of in-scope questions falls."""
    return float(np.quantile(similarities, in_scope_loss)) if len(similarities) else -1.0

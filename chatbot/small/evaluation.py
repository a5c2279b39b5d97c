"""Evaluating the router: train on one labelled set, run the live policy on another.

The test rows go through `chatbot.policy.decide` with the thresholds chosen exactly as training
chooses them, so the figures describe what the live router would do.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.policy import Thresholds, decide
from chatbot.small import classifier
from chatbot.small.encoder import Encoder
from chatbot.small.model import Policy, Prediction, Progress, SmallModel, choose_policy
from chatbot.small.model import train as train_model

OUT_OF_SCOPE = "oos"


class DataError(ValueError):
    pass


def read_labelled_csv(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows from a CSV with a header `text,label` (or BANKING77's `text,category`).
    An empty label is kept as "" (out of scope in a test set)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = set(reader.fieldnames or [])
            label_field = "label" if "label" in fields else "category" if "category" in fields else None
            if "text" not in fields or label_field is None:
                raise DataError(f"{path}: the CSV needs a header with columns text,label")
            rows = [((row["text"] or "").strip(), (row[label_field] or "").strip()) for row in reader]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    return [(text, label) for text, label in rows if text]


def hold_out_intents(
    train: list[tuple[str, str]], test: list[tuple[str, str]], count: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """Remove `count` random intents from training; their test rows become out of scope."""
    intents = sorted({label for _, label in train})
    if not 0 < count < len(intents) - 1:
        raise DataError(f"can hold out between 1 and {len(intents) - 2} of the {len(intents)} intents")
    held = sorted(np.random.default_rng(seed).choice(intents, size=count, replace=False).tolist())
    held_set = set(held)
    kept_train = [(text, label) for text, label in train if label not in held_set]
    relabelled = [(text, OUT_OF_SCOPE if label in held_set else label) for text, label in test]
    return kept_train, relabelled, held


def evaluate(
    train: list[tuple[str, str]],
    test: list[tuple[str, str]],
    encoder: Encoder,
    epochs: int | None = None,
    progress: Progress | None = None,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """Train exactly as `train_small_model` does (fine-tuning `epochs`, default from the settings; into
    `model_dir` if given, else a temporary folder) and run the live policy on the test rows."""
    if len({label for _, label in train}) < 2:
        raise DataError("the training set needs at least two intents")
    if not test:
        raise DataError("the test set is empty")
    with tempfile.TemporaryDirectory(prefix="tandem-evaluate-") as workdir:
        folder = train_model(train, model_dir or Path(workdir), encoder=encoder, epochs=epochs, progress=progress)
        model = SmallModel(folder, encoder)
        test_vectors = model.encoder.embed([text for text, _ in test], progress=True)
    assert model.policy is not None
    report = _report(model.head, model.policy, model.meta["metrics"], test, test_vectors)
    return {
        "train_rows": len(train),
        **report,
        "fine_tune": model.meta["fine_tune"],
        "model": str(folder) if model_dir else None,
    }


def evaluate_vectors(
    train: list[tuple[str, str]], train_vectors: np.ndarray, test: list[tuple[str, str]], test_vectors: np.ndarray
) -> dict[str, Any]:
    """The frozen-encoder model on embeddings computed beforehand (rows in the order of `train`, `test`)."""
    train_labels = np.array([label for _, label in train])
    policy, holdout = choose_policy(train_vectors, train_labels)
    head = classifier.Classifier.fit(train_vectors, train_labels)
    return {"train_rows": len(train), **_report(head, policy, holdout, test, test_vectors)}


def _report(
    head: classifier.Classifier,
    policy: Policy,
    holdout: dict[str, Any],
    test: list[tuple[str, str]],
    test_vectors: np.ndarray,
) -> dict[str, Any]:
    thresholds = Thresholds.current(policy)
    test_texts = [text for text, _ in test]
    test_labels = np.array([label for _, label in test])
    scores = head.score(test_vectors)
    answered = np.array(
        [
            decide(text, Prediction(str(intent), float(confidence), float(similarity), 0), thresholds).answer
            for text, intent, confidence, similarity in zip(
                test_texts, scores.intents, scores.confidences, scores.similarities, strict=True
            )
        ]
    )
    in_scope = (test_labels != OUT_OF_SCOPE) & (test_labels != "")
    correct = scores.intents == test_labels
    answered_in_scope = answered & in_scope
    oos = ~in_scope
    return {
        "test_rows": len(test),
        "in_scope_rows": int(in_scope.sum()),
        "out_of_scope_rows": int(oos.sum()),
        "accuracy": _ratio(correct[in_scope].sum(), in_scope.sum()),
        "answered_accuracy": _ratio(correct[answered_in_scope].sum(), answered_in_scope.sum()),
        "coverage": _ratio(answered_in_scope.sum(), in_scope.sum()),
        "oos_recall": _ratio((~answered[oos]).sum(), oos.sum()) if oos.any() else None,
        "threshold": thresholds.confidence,
        "oos_similarity": thresholds.oos_similarity,
        "threshold_chosen_by": policy.chosen_by,
        "holdout": holdout,
        "risk_coverage": classifier.risk_coverage(scores.confidences[in_scope], correct[in_scope]),
        # How well each score alone separates out-of-scope rows, at the threshold that still answers 90 %
        # of the in-scope rows (the operating point).
        "oos_recall_at_90_coverage": {
            "confidence": _recall_at(scores.confidences, in_scope, 0.9),
            "similarity": _recall_at(scores.similarities, in_scope, 0.9),
        }
        if oos.any() and in_scope.any()
        else None,
    }


def _recall_at(score: np.ndarray, in_scope: np.ndarray, coverage: float) -> float:
    """Share of out-of-scope rows below the score that keeps `coverage` of the in-scope rows above it."""
    floor = np.quantile(score[in_scope], 1 - coverage)
    return round(float((score[~in_scope] < floor).mean()), 4)


def _ratio(numerator: Any, denominator: Any) -> float | None:
    return round(float(numerator) / float(denominator), 4) if denominator else None


def plot_risk_coverage(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coverage = [point[0] for point in report["risk_coverage"]]
    accuracy = [point[1] for point in report["risk_coverage"]]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    axes.plot(coverage, accuracy, marker="o", markersize=3, label="answering the most confident first")
    if report["coverage"] is not None and report["answered_accuracy"] is not None:
        axes.scatter(
            [report["coverage"]],
            [report["answered_accuracy"]],
            color="crimson",
            zorder=3,
            label=f"shipped policy (threshold {report['threshold']:.3f})",
        )
    axes.set_xlabel("coverage (share of in-scope questions answered by the small model)")
    axes.set_ylabel("accuracy of the answered questions")
    axes.set_xlim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    axes.set_title("Small-model router: risk–coverage")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

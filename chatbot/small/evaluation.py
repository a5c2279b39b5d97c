"""Evaluating the router: train on one labelled set (or load a saved model), route another.

The test rows go through `chatbot.routing.route_many` - the code the live server runs - with the
thresholds chosen exactly as training chooses them, so the figures describe what the live router
would do. Test labels say what should happen to a row:

- an intent slug: the small tier answers it with that intent;
- slugs joined by `+` (a multi-part message): right when every part is answered with its intent, or
  when the message is escalated;
- `oos` or empty: escalated (any destination but small);
- `small_talk`: answered by the small tier with small-talk replies;
- `route:<destination>` (`route:people`) or `reason:<reason>` (`reason:complaint`).
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.policy import Thresholds
from chatbot.routes import Destination, Reason
from chatbot.routing import Incoming, Routed, route_many
from chatbot.small import classifier
from chatbot.small.encoder import Encoder
from chatbot.small.model import Progress, SmallModel, current_version
from chatbot.small.model import train as train_model
from chatbot.smalltalk import is_small_talk

OUT_OF_SCOPE = "oos"
SMALL_TALK = "small_talk"
ROUTE_PREFIX = "route:"
REASON_PREFIX = "reason:"


class DataError(ValueError):
    pass


def read_labelled_csv(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows from a CSV with a header `text,label` (or BANKING77's `text,category`).
    An empty label is kept as "" (out of scope in a test set)."""
    return [(row.text, row.label) for row in read_test_csv(path)]


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    # An optional `group` column, reported separately (e.g. the routing test set's groups).
    group: str = ""


def read_test_csv(path: Path) -> list[Row]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = set(reader.fieldnames or [])
            label_field = "label" if "label" in fields else "category" if "category" in fields else None
            if "text" not in fields or label_field is None:
                raise DataError(f"{path}: the CSV needs a header with columns text,label")
            rows = [
                Row((row["text"] or "").strip(), (row[label_field] or "").strip(), (row.get("group") or "").strip())
                for row in reader
            ]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    return [row for row in rows if row.text]


def check_labels(rows: list[Row], intents: set[str]) -> None:
    """Refuse labels the evaluation cannot judge: an unknown destination, reason or intent."""
    problems = []
    for number, row in enumerate(rows, start=2):
        label = row.label
        if label.startswith(ROUTE_PREFIX):
            if label[len(ROUTE_PREFIX) :] not in {d.value for d in Destination}:
                problems.append(f"line {number}: unknown destination in {label!r}")
        elif label.startswith(REASON_PREFIX):
            if label[len(REASON_PREFIX) :] not in {r.value for r in Reason}:
                problems.append(f"line {number}: unknown reason in {label!r}")
        elif label in ("", OUT_OF_SCOPE, SMALL_TALK):
            continue
        else:
            unknown = [slug for slug in label.split("+") if slug not in intents]
            if unknown:
                problems.append(f"line {number}: {', '.join(unknown)} is not an intent of the model")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DataError(f"the test set has labels it cannot be judged on: {shown}")


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
    # A multi-part row with a held-out part should be escalated too.
    relabelled = [(text, OUT_OF_SCOPE if held_set & set(label.split("+")) else label) for text, label in test]
    return kept_train, relabelled, held


def evaluate(
    train: list[tuple[str, str]],
    test: list[tuple[str, str]] | list[Row],
    encoder: Encoder,
    epochs: int | None = None,
    progress: Progress | None = None,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """Train exactly as `train_small_model` does (fine-tuning `epochs`, default from the settings; into
    `model_dir` if given, else a temporary folder) and route the test rows."""
    if len({label for _, label in train}) < 2:
        raise DataError("the training set needs at least two intents")
    rows = _rows(test)
    with tempfile.TemporaryDirectory(prefix="tandem-evaluate-") as workdir:
        folder = train_model(train, model_dir or Path(workdir), encoder=encoder, epochs=epochs, progress=progress)
        model = SmallModel(folder, encoder)
        report = evaluate_model(model, rows)
    return {
        "train_rows": len(train),
        **report,
        "fine_tune": model.meta["fine_tune"],
        "model": str(folder) if model_dir else None,
    }


def load_model(path: Path, encoder: Encoder) -> SmallModel:
    """A saved model: an artefact folder, or a folder of them whose `current` names one."""
    if (path / "meta.json").exists():
        return SmallModel(path, encoder)
    version = current_version(path)
    if version is None or not (path / version / "meta.json").exists():
        raise DataError(f"{path} holds no trained small model (train one with --save-model {path})")
    return SmallModel(path / version, encoder)


def _rows(test: list[tuple[str, str]] | list[Row]) -> list[Row]:
    rows = [row if isinstance(row, Row) else Row(row[0], row[1]) for row in test]
    if not rows:
        raise DataError("the test set is empty")
    return rows


def evaluate_model(model: SmallModel, test: list[tuple[str, str]] | list[Row]) -> dict[str, Any]:
    """Route the test rows with a trained model, as the live server would, and judge each."""
    rows = _rows(test)
    check_labels(rows, set(model.head.classes.tolist()))
    assert model.policy is not None
    thresholds = Thresholds.current(model.policy)
    routed: list[Routed] = []
    batch = 64
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        routed.extend(route_many(model, [Incoming(row.text) for row in chunk], thresholds))
    return {
        **_intent_report(rows, routed, thresholds, model),
        **_route_report(rows, routed, thresholds),
    }


def _kind(label: str) -> str:
    if label in ("", OUT_OF_SCOPE):
        return OUT_OF_SCOPE
    if label == SMALL_TALK or label.startswith((ROUTE_PREFIX, REASON_PREFIX)):
        return label
    return "multi" if "+" in label else "intent"


def expected_destination(label: str, thresholds: Thresholds) -> Destination | None:
    """Where a row should go; None for an out-of-scope row (large or people, either is right)."""
    kind = _kind(label)
    if kind in ("intent", "multi", SMALL_TALK):
        return Destination.SMALL
    if kind.startswith(ROUTE_PREFIX):
        return Destination(kind[len(ROUTE_PREFIX) :])
    if kind.startswith(REASON_PREFIX):
        return thresholds.routes.get(Reason(kind[len(REASON_PREFIX) :]), Destination.LARGE)
    return None


def is_right(label: str, routed: Routed) -> bool:
    route = routed.route
    kind = _kind(label)
    intents = [reply.intent for reply in route.replies]
    if kind == "intent":
        return route.answer and intents == [label]
    if kind == "multi":
        return not route.answer or sorted(intents) == sorted(set(label.split("+")))
    if kind == OUT_OF_SCOPE:
        return not route.answer
    if kind == SMALL_TALK:
        return route.answer and all(is_small_talk(intent) for intent in intents)
    if kind.startswith(ROUTE_PREFIX):
        return route.destination.value == kind[len(ROUTE_PREFIX) :]
    return route.reason is not None and route.reason.value == kind[len(REASON_PREFIX) :]


def _outcome(routed: Routed) -> str:
    return routed.route.reason.value if routed.route.reason else "answered"


def _intent_report(rows: list[Row], routed: list[Routed], thresholds: Thresholds, model: SmallModel) -> dict[str, Any]:
    """The small tier's figures on single-intent rows (and out-of-scope rows), as before routes."""
    single = np.array([_kind(row.label) == "intent" for row in rows])
    oos = np.array([_kind(row.label) == OUT_OF_SCOPE for row in rows])
    labels = np.array([row.label for row in rows])
    top = np.array([r.prediction.intent if r.prediction else "" for r in routed])
    confidences = np.array([r.prediction.confidence if r.prediction else 0.0 for r in routed])
    similarities = np.array([r.prediction.similarity if r.prediction else 0.0 for r in routed])
    answered = np.array([r.route.answer for r in routed])
    right = np.array([is_right(row.label, r) for row, r in zip(rows, routed, strict=True)])
    correct = top == labels
    answered_single = answered & single
    assert model.policy is not None
    return {
        "test_rows": len(rows),
        "in_scope_rows": int(single.sum()),
        "out_of_scope_rows": int(oos.sum()),
        # Top-1 of the whole message on single-intent rows, whatever the route.
        "accuracy": _ratio(correct[single].sum(), single.sum()),
        "answered_accuracy": _ratio(right[answered_single].sum(), answered_single.sum()),
        "coverage": _ratio(answered_single.sum(), single.sum()),
        "oos_recall": _ratio((~answered[oos]).sum(), oos.sum()) if oos.any() else None,
        "threshold": thresholds.confidence,
        "oos_similarity": thresholds.oos_similarity,
        "threshold_chosen_by": model.policy.chosen_by,
        "holdout": model.meta["metrics"],
        "risk_coverage": classifier.risk_coverage(confidences[single], correct[single]),
        # How well each score alone separates out-of-scope rows, at the threshold that still answers 90 %
        # of the in-scope rows.
        "oos_recall_at_90_coverage": {
            "confidence": _recall_at(confidences, single, oos, 0.9),
            "similarity": _recall_at(similarities, single, oos, 0.9),
        }
        if oos.any() and single.any()
        else None,
    }


def _route_report(rows: list[Row], routed: list[Routed], thresholds: Thresholds) -> dict[str, Any]:
    expected = [expected_destination(row.label, thresholds) for row in rows]
    actual = [r.route.destination for r in routed]
    routes = {}
    for destination in Destination:
        support = sum(1 for e in expected if e == destination)
        chosen = [e for e, a in zip(expected, actual, strict=True) if a == destination]
        hits = sum(1 for e in chosen if e == destination)
        routes[destination.value] = {
            "precision": _ratio(hits, len(chosen)),
            "recall": _ratio(hits, support),
            "support": support,
        }
    confusion: dict[str, dict[str, int]] = {}
    for e, a in zip(expected, actual, strict=True):
        counts = confusion.setdefault(e.value if e else "escalate", {d.value: 0 for d in Destination})
        counts[a.value] += 1
    by_kind: dict[str, list[tuple[Row, Routed]]] = {}
    by_group: dict[str, list[tuple[Row, Routed]]] = {}
    for row, result in zip(rows, routed, strict=True):
        by_kind.setdefault(_kind(row.label), []).append((row, result))
        if row.group:
            by_group.setdefault(row.group, []).append((row, result))
    return {
        "routes": routes,
        "confusion": confusion,
        "labels": {kind: _judged(pairs) for kind, pairs in sorted(by_kind.items())},
        "groups": {group: _judged(pairs) for group, pairs in sorted(by_group.items())},
    }


def _judged(pairs: list[tuple[Row, Routed]]) -> dict[str, Any]:
    right = sum(1 for row, result in pairs if is_right(row.label, result))
    return {
        "right": _ratio(right, len(pairs)),
        "support": len(pairs),
        "destinations": dict(Counter(result.route.destination.value for _, result in pairs).most_common()),
        "outcomes": dict(Counter(_outcome(result) for _, result in pairs).most_common()),
    }


def confusion_table(report: dict[str, Any]) -> str:
    """Expected destination (rows) against actual destination (columns), as text."""
    columns = [d.value for d in Destination]
    lines = ["expected \\ actual".ljust(18) + "".join(c.rjust(9) for c in columns)]
    for expected, counts in report["confusion"].items():
        lines.append(expected.ljust(18) + "".join(str(counts[c]).rjust(9) for c in columns))
    return "\n".join(lines)


def labels_table(report: dict[str, Any]) -> str:
    lines = ["label kind".ljust(26) + "right".rjust(8) + "rows".rjust(7) + "  outcomes"]
    for section in ("labels", "groups"):
        for name, figures in report[section].items():
            right = figures["right"]
            outcomes = ", ".join(f"{k} {v}" for k, v in list(figures["outcomes"].items())[:5])
            lines.append(
                f"{section[:-1]} {name}"[:26].ljust(26)
                + (f"{right:.1%}" if right is not None else "-").rjust(8)
                + str(figures["support"]).rjust(7)
                + "  "
                + outcomes
            )
    return "\n".join(lines)


def _recall_at(score: np.ndarray, in_scope: np.ndarray, oos: np.ndarray, coverage: float) -> float:
    """Share of out-of-scope rows below the score that keeps `coverage` of the in-scope rows above it."""
    floor = np.quantile(score[in_scope], 1 - coverage)
    return round(float((score[oos] < floor).mean()), 4)


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

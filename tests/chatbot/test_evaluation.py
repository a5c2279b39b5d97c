"""Choosing thresholds, and evaluating the router with the live policy."""

from __future__ import annotations

import csv
import io
import json
from contextlib import redirect_stderr
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from chatbot.small import classifier
from chatbot.small import model as small_model
from support.knowledge import loader


def test_the_threshold_is_the_lowest_that_keeps_answers_accurate_enough() -> None:
    confidences = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, True, False])
    assert classifier.threshold_for_accuracy(confidences, correct, 1.0) == 0.8
    assert classifier.threshold_for_accuracy(confidences, correct, 0.8) == 0.6
    assert classifier.threshold_for_accuracy(confidences, np.zeros(6, dtype=bool), 0.9) == 1.0


def answered_share(confidences: np.ndarray, correct: np.ndarray, confidence: float) -> float:
    return float((confidences >= classifier.threshold_for_accuracy(confidences, correct, 0.99, confidence)).mean())


def rows_less_accurate_the_less_confident(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose chance of being right falls from 100 % to 96 % with their confidence: the most confident
    half is 99 % right."""
    confidences = np.linspace(1.0, 0.5, count, endpoint=False)
    rank = np.arange(count) / count
    correct = np.random.default_rng(7).random(count) < 1 - 0.04 * rank
    return confidences, correct


def test_a_lower_confidence_bound_is_stricter_than_the_point_estimate_on_few_rows() -> None:
    confidences, correct = rows_less_accurate_the_less_confident(1_000)
    point, bounded = answered_share(confidences, correct, 0.0), answered_share(confidences, correct, 0.9)
    # The most confident half is 99 % right; on 1,000 rows the point estimate's luck answers far more.
    assert point > 0.5
    assert bounded < 0.8 * point
    # The rows it answers are right often enough that 99 % is within the bound's reach, and no more.
    threshold = classifier.threshold_for_accuracy(confidences, correct, 0.99, 0.9)
    answered = confidences >= threshold
    assert classifier.accuracy_lower_bound(correct[answered].sum(), answered.sum(), 0.9) >= 0.99
    assert correct[answered].mean() > 0.99


def test_a_lower_confidence_bound_approaches_the_point_estimate_on_many_rows() -> None:
    confidences, correct = rows_less_accurate_the_less_confident(100_000)
    point, bounded = answered_share(confidences, correct, 0.0), answered_share(confidences, correct, 0.9)
    assert bounded < point
    assert bounded > 0.9 * point
    assert 0.45 < bounded < point < 0.55
    # The bound itself closes in on the share right as rows accumulate.
    bounds = classifier.accuracy_lower_bound(np.array([99, 990, 9_900]), np.array([100, 1_000, 10_000]), 0.9)
    assert list(bounds) == sorted(bounds) and 0.98 < bounds[-1] < 0.99


def test_a_lower_confidence_bound_answers_nothing_when_no_threshold_qualifies() -> None:
    # 50 rows all right: 100 % is the point estimate, but 50 rows cannot show 99 % with 90 % confidence.
    confidences = np.linspace(0.99, 0.5, 50)
    correct = np.ones(50, dtype=bool)
    assert classifier.threshold_for_accuracy(confidences, correct, 0.99) == 0.5
    assert classifier.threshold_for_accuracy(confidences, correct, 0.99, 0.9) == 1.0
    assert classifier.threshold_for_accuracy(confidences, np.zeros(50, dtype=bool), 0.5, 0.9) == 1.0


def test_a_confidence_level_of_zero_is_the_point_estimate_rule() -> None:
    confidences, correct = rows_less_accurate_the_less_confident(1_000)
    order = np.argsort(-confidences, kind="stable")
    cumulative = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    lowest_meeting = confidences[order][np.flatnonzero(cumulative >= 0.99).max()]
    assert classifier.threshold_for_accuracy(confidences, correct, 0.99, 0.0) == lowest_meeting
    assert classifier.threshold_for_accuracy(confidences, correct, 0.99) == lowest_meeting


def test_training_says_when_the_threshold_was_chosen_at_a_lower_bound(settings) -> None:
    confidences, correct = rows_less_accurate_the_less_confident(1_000)
    labels = np.array(["card-lost"] * len(confidences))
    scores = classifier.Scores(np.where(correct, "card-lost", "card-arrival"), confidences, np.ones(len(confidences)))
    settings.TANDEM_THRESHOLD_CONFIDENCE = 0.9
    bounded, _ = small_model.policy_from_scores(scores, labels, "held-out rows")
    settings.TANDEM_THRESHOLD_CONFIDENCE = 0.0
    point, _ = small_model.policy_from_scores(scores, labels, "held-out rows")
    assert bounded.chosen_by == "answered accuracy 99.0% (90% lower bound) on held-out rows"
    assert point.chosen_by == "answered accuracy 99.0% on held-out rows"
    assert bounded.confidence_threshold > point.confidence_threshold


def test_the_risk_coverage_curve_answers_the_most_confident_first() -> None:
    confidences = np.array([0.9, 0.1, 0.8, 0.2])
    correct = np.array([True, False, True, True])
    assert classifier.risk_coverage(confidences, correct, points=4) == [
        [0.25, 1.0],
        [0.5, 1.0],
        [0.75, 1.0],
        [1.0, 0.75],
    ]


def test_an_escalation_rate_target_escalates_that_share() -> None:
    confidences = np.linspace(0, 1, 101)
    assert classifier.threshold_for_escalation_rate(confidences, 0.2) == pytest.approx(0.2)


def test_a_two_intent_head_gives_the_probabilities_of_the_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(40, 5)).astype(np.float32)
    labels = np.where(vectors[:, 0] + 0.3 * rng.normal(size=40) > 0, "yes", "no")
    head = classifier.Classifier.fit(vectors, labels)
    assert head.coef.shape == (2, 5)
    reference = LogisticRegression(C=classifier.REGULARISATION_C, max_iter=3000).fit(vectors, labels)
    scores = replace(head, neighbour_weight=0.0).score(vectors)
    assert (scores.intents == reference.predict(vectors)).all()
    assert np.allclose(scores.confidences, reference.predict_proba(vectors).max(axis=1), atol=1e-5)


def test_the_nearest_examples_vote_and_the_closest_count_most() -> None:
    examples = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    head = classifier.Classifier(
        coef=np.zeros((2, 2), dtype=np.float32),  # a head with no opinion: the vote decides
        intercept=np.zeros(2, dtype=np.float32),
        classes=np.array(["a", "b"]),
        examples=examples,
        example_labels=np.array(["a", "b", "b"]),
        neighbour_weight=1.0,
        neighbours=2,
    )
    scores = head.score(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    assert scores.intents.tolist() == ["a", "b"]
    # Similarities 1.0 (a) and 0.8 (b) at temperature 0.05: a's weight is e^4 times b's.
    assert scores.confidences[0] == pytest.approx(1 / (1 + np.exp(-4)), abs=1e-4)
    assert scores.similarities.tolist() == pytest.approx([1.0, 1.0])


def test_out_of_fold_scores_never_see_their_own_example() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    labels = np.repeat(["a", "b", "c"], 10)
    vectors = centres[np.repeat([0, 1, 2], 10)] + rng.normal(scale=0.1, size=(30, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = classifier.out_of_fold_scores(vectors.astype(np.float32), labels)
    assert (scores.intents == labels).mean() > 0.9
    # Each example's nearest neighbour is another example: never itself (similarity 1.0).
    assert scores.similarities.max() < 0.9999


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def demo_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Train on the demo phrasings; test on the article titles plus questions no article covers."""
    folder = tmp_path_factory.mktemp("router-eval")
    articles = loader.load_file(loader.DEMO_FILE)
    train = [(text, a.slug) for a in articles for text in a.phrasings]
    test = [(a.title, a.slug) for a in articles]
    test += [("what is the capital of peru", "oos"), ("write me a haiku about rain", ""), ("who won the match", "oos")]
    return write_csv(folder / "train.csv", train), write_csv(folder / "test.csv", test)


def evaluate_router(*args: str) -> dict:
    """Run the command and read the JSON object on its last line."""
    out = io.StringIO()
    with redirect_stderr(io.StringIO()):
        call_command("evaluate_router", *args, stdout=out)
    report: dict = json.loads(out.getvalue().strip().splitlines()[-1])
    return report


def test_evaluate_router_prints_the_figures_as_json(demo_split: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = demo_split
    report = evaluate_router("--train", str(train), "--test", str(test), "--plot", str(tmp_path / "rc.png"))
    assert report["in_scope_rows"] == 52 and report["out_of_scope_rows"] == 3
    assert 0.7 < report["accuracy"] <= 1.0
    assert 0.0 < report["coverage"] <= 1.0 and report["answered_accuracy"] >= report["accuracy"] - 1e-9
    assert report["oos_recall"] == 1.0
    assert 0.0 < report["threshold"] < 1.0
    assert report["risk_coverage"][-1] == [1.0, report["accuracy"]]
    assert (tmp_path / "rc.png").read_bytes()[:4] == b"\x89PNG"


def test_holding_intents_out_turns_their_test_rows_out_of_scope(demo_split: tuple[Path, Path]) -> None:
    train, test = demo_split
    report = evaluate_router("--train", str(train), "--test", str(test), "--hold-out-intents", "10", "--seed", "3")
    assert len(report["held_out_intents"]) == 10
    assert report["out_of_scope_rows"] == 13 and report["in_scope_rows"] == 42
    assert report["oos_recall"] is not None and report["oos_recall"] > 0.5


def test_a_csv_without_the_right_columns_is_refused(tmp_path: Path, demo_split: tuple[Path, Path]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,intent\nhello,greet\n")
    with pytest.raises(CommandError, match="text,label"):
        call_command("evaluate_router", "--train", str(bad), "--test", str(demo_split[1]))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("evaluate_router", "--train", str(tmp_path / "missing.csv"), "--test", str(demo_split[1]))


@pytest.fixture(scope="module")
def routed_model(demo_split: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained once by evaluate_router --save-model, for the route tests below."""
    folder = tmp_path_factory.mktemp("saved-model")
    train, test = demo_split
    evaluate_router("--train", str(train), "--test", str(test), "--save-model", str(folder))
    return folder


def test_evaluate_router_judges_every_kind_of_label_by_its_route(routed_model: Path, tmp_path: Path) -> None:
    test = write_csv(
        tmp_path / "routes.csv",
        [
            ("How do I reset my password?", "reset-password"),
            ("hello there", "small_talk"),
            ("thanks, bye", "small_talk"),
            ("I want to talk to a real person", "route:people"),
            ("Bonjour, je voudrais changer l'adresse de livraison de ma commande", "reason:language"),
            ("How do I reset my password? Also, how do I get a VAT invoice?", "reset-password+vat-invoice"),
            ("what is the capital of peru", "oos"),
        ],
    )
    report = evaluate_router("--model", str(routed_model), "--test", str(test))
    labels = report["labels"]
    assert set(labels) == {"intent", "small_talk", "route:people", "reason:language", "multi", "oos"}
    assert labels["small_talk"] == {
        "right": 1.0,
        "support": 2,
        "destinations": {"small": 2},
        "outcomes": {"answered": 2},
    }
    assert labels["route:people"]["right"] == 1.0 and labels["reason:language"]["right"] == 1.0
    assert labels["multi"]["right"] == 1.0 and labels["oos"]["right"] == 1.0
    # Expected small: the routine question, the small talk and the two-part message.
    assert report["routes"]["small"]["support"] == 4 and report["routes"]["people"]["support"] == 1
    assert report["routes"]["people"] == {"precision": 1.0, "recall": 1.0, "support": 1}
    assert report["confusion"]["people"] == {"small": 0, "large": 0, "people": 1}
    assert sum(report["confusion"]["escalate"].values()) == 1


def test_the_printed_report_shows_the_confusion_table(routed_model: Path, tmp_path: Path) -> None:
    test = write_csv(tmp_path / "t.csv", [("hello", "small_talk"), ("talk to a human please", "route:people")])
    out = io.StringIO()
    call_command("evaluate_router", "--model", str(routed_model), "--test", str(test), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[-3:] == ["small", "large", "people"]
    assert any(line.startswith("people") and line.split()[1:] == ["0", "0", "1"] for line in lines)


def test_labels_the_evaluation_cannot_judge_are_refused(routed_model: Path, tmp_path: Path) -> None:
    for label, error in [
        ("route:moon", "unknown destination"),
        ("reason:sleepy", "unknown reason"),
        ("no-such-intent", "not an intent"),
    ]:
        test = write_csv(tmp_path / "bad.csv", [("hello", label)])
        with pytest.raises(CommandError, match=error):
            call_command("evaluate_router", "--model", str(routed_model), "--test", str(test))
    with pytest.raises(CommandError, match="holds no trained small model"):
        call_command("evaluate_router", "--model", str(tmp_path), "--test", str(test))

"""The operating curve: answered accuracy against the share the small tier answers, and its cost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.test import override_settings

from chatbot.small import versions
from chatbot.small.model import get_small_model
from support.tuning import curve
from support.tuning.curve import DESK_LABEL, KNOWLEDGE_BASE, SPOT_CHECK, cost_per_1000, large_per_message
from tests.tuning.conftest import label


@override_settings(TANDEM_OPERATING_POINT_MIN_LABELS=0)
def test_the_curve_is_monotone_sensible_on_a_known_labelled_set(known_labels: list[tuple[str, str]]) -> None:
    chart = curve.curve(get_small_model())
    assert chart.sources == {SPOT_CHECK: 12, DESK_LABEL: 12}
    thresholds = [point.threshold for point in chart.points]
    assert thresholds == sorted(thresholds) and len(thresholds) >= 5
    answered = [point.answered for point in chart.points]
    # A higher bar never answers more; the lowest answers more than the highest.
    assert all(later <= earlier for earlier, later in zip(answered, answered[1:], strict=False))
    assert answered[0] > answered[-1]
    # Raising the bar takes wrong answers away (never adds one) and, over the middle of the curve, more
    # of them than right ones. (Not at its very top: a point answering two of 24 may have one of them
    # wrong, as a model trained on another CPU had.)
    wrong = [point.answered - point.right for point in chart.points]
    assert all(later <= earlier for earlier, later in zip(wrong, wrong[1:], strict=False))
    assert wrong[-1] < wrong[0]
    middle = chart.points[len(chart.points) // 2]
    assert middle.accuracy is not None and chart.points[0].accuracy is not None
    assert middle.accuracy >= chart.points[0].accuracy
    # Answering less sends more to the large model: 1,000 messages cost more.
    large = large_per_message()
    prices = [cost_per_1000(point, large) for point in chart.points]
    assert all(later >= earlier for earlier, later in zip(prices, prices[1:], strict=False))
    assert prices[-1] > prices[0]
    # Both thresholds of interest are points of their own.
    assert chart.at(chart.trained_confidence) is not None


@override_settings(TANDEM_OPERATING_POINT_MIN_LABELS=0)
def test_the_point_serving_agrees_with_scoring_as_the_server_routes(known_labels: list[tuple[str, str]]) -> None:
    model = get_small_model()
    chart = curve.curve(model)
    point = chart.at(chart.base.confidence)
    assert point is not None
    scored = versions.score_labelled(model, known_labels)
    assert point.coverage == scored["coverage"]
    assert point.accuracy == scored["answered_accuracy"]


def test_with_few_labels_the_knowledge_base_rows_the_model_never_saw_are_added(model_dir: Path) -> None:
    label("when will my parcel arrive", "track-order", spot_check=True)
    # A label the model was trained on (given before it, not one of the held-out ones) would flatter it.
    learnt = label("where is my stuff", "track-order")
    while learnt.message_id % 5 == 0:
        # One in five is held out, never trained on (it would count as a desk label): not this one.
        learnt.message.delete()
        learnt = label("where is my stuff please", "track-order")
    learnt.given_at -= timedelta(days=3650)
    learnt.save()
    chart = curve.curve(get_small_model())
    assert chart.sources[SPOT_CHECK] == 1
    assert DESK_LABEL not in chart.sources
    # The demo knowledge base's calibration split: the phrasings the encoder was not fine-tuned on.
    assert chart.sources[KNOWLEDGE_BASE] > 20


@override_settings(TANDEM_OPERATING_POINT_MIN_LABELS=0)
def test_choosing_a_target_accuracy_picks_the_lowest_qualifying_threshold(known_labels: list[tuple[str, str]]) -> None:
    chart = curve.curve(get_small_model())
    accuracies = sorted({point.accuracy for point in chart.points if point.accuracy is not None})
    assert len(accuracies) >= 2
    target = accuracies[len(accuracies) // 2]
    chosen = chart.for_accuracy(target)
    assert chosen is not None and chosen.accuracy is not None and chosen.accuracy >= target
    lower = [point for point in chart.points if point.threshold < chosen.threshold]
    assert all(point.accuracy is None or point.accuracy < target for point in lower)
    assert chart.for_accuracy(1.01) is None


@override_settings(TANDEM_OPERATING_POINT_MIN_LABELS=0)
def test_a_target_escalation_rate_picks_the_highest_threshold_within_it(known_labels: list[tuple[str, str]]) -> None:
    chart = curve.curve(get_small_model())
    target = 0.5
    chosen = chart.for_escalation(target)
    assert chosen is not None and chosen.escalation <= target
    higher = [point for point in chart.points if point.threshold > chosen.threshold]
    assert all(point.escalation > target for point in higher)


@override_settings(TANDEM_OPERATING_POINT_MIN_LABELS=0)
def test_the_scored_rows_are_cached_per_model_version_and_labels(known_labels: list[tuple[str, str]]) -> None:
    model = get_small_model()
    first = curve.curve(model)
    key = curve.cache_key(model)
    assert key[0] == model.version and list(curve._cache) == [key]
    again = curve.curve(model)
    assert again.points == first.points
    # The cached rows, not a new scoring.
    assert curve.scored_rows(model, first.base) is curve._cache[key]
    label("how do i return my shoes", "how-to-return", spot_check=True)
    assert curve.cache_key(model) != key
    assert curve.curve(model).rows == first.rows + 1

"""The operating curve of the serving small model: for each confidence threshold, the share of messages
the small tier would answer, how many of those answers are right, and what 1,000 messages would cost.

Rows, best first:
- agents' spot checks of small-tier answers: a random sample of traffic, the fairest figures;
- agents' other labels, of messages the small model escalated: the hard questions, so they make the
  model look worse than it does on traffic (the page says how many of each);
- when there are fewer than TANDEM_OPERATING_POINT_MIN_LABELS of those, the knowledge base's rows the
  serving model was not trained on, scored again now (see `knowledge_base_rows`).
A label counts only if the serving model never learnt from it: it is one of the held-out labels (one in
HELD_OUT_EVERY, never trained on), or it was given after the model was trained.

Each row is routed once, as the server routes it (chatbot.routing.route_many); then only the policy's
decision (chatbot.policy.decide) is taken again for each threshold, which costs microseconds. The rows'
scores are cached per (model version, labels), so the page answers at once after the first visit.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from chatbot import costs
from chatbot.policy import Signals, Thresholds, decide
from chatbot.routing import Incoming, route_many
from chatbot.small import classifier
from chatbot.small import model as small_model
from chatbot.small.model import Prediction, SmallModel
from chatbot.smalltalk import builtin, with_small_talk
from support.analytics.stats import LargeEstimate, baseline_per_message
from support.knowledge.loader import training_examples
from support.knowledge.models import Article
from support.knowledge.retraining import HELD_OUT_EVERY
from support.review.models import Label, LabelKind

SPOT_CHECK = "spot check"
DESK_LABEL = "escalation label"
KNOWLEDGE_BASE = "knowledge base (held out at training)"
# At most this many points on the curve (and in its table).
MAX_POINTS = 60


@dataclass(frozen=True)
class Row:
    signals: Signals
    # The article that answers it, or "" when none does (the small tier should not answer).
    label: str
    tokens: int
    source: str


@dataclass(frozen=True)
class Point:
    threshold: float
    rows: int
    answered: int
    right: int
    # Encoder tokens of the answered rows: the small tier's cost at this point.
    answered_tokens: int

    @property
    def coverage(self) -> float:
        return self.answered / self.rows if self.rows else 0.0

    @property
    def escalation(self) -> float:
        return 1.0 - self.coverage

    @property
    def accuracy(self) -> float | None:
        return self.right / self.answered if self.answered else None


@dataclass
class Curve:
    version: str
    # The thresholds the rows were scored against, but for the confidence (the curve's variable).
    base: Thresholds
    trained_confidence: float
    points: list[Point]
    sources: dict[str, int]
    seconds: float
    computed_at: float = field(default_factory=time.time)

    @property
    def rows(self) -> int:
        return sum(self.sources.values())

    def at(self, threshold: float) -> Point | None:
        for point in self.points:
            if abs(point.threshold - threshold) < 5e-7:
                return point
        return None

    def for_accuracy(self, target: float) -> Point | None:
        """The lowest threshold whose answers are at least `target` right (answering as much as allowed)."""
        for point in self.points:
            if point.accuracy is not None and point.accuracy >= target:
                return point
        return None

    def for_escalation(self, target: float) -> Point | None:
        """The highest threshold escalating at most `target` of messages (the most careful within it)."""
        within = [point for point in self.points if point.escalation <= target + 1e-12]
        return within[-1] if within else None


def large_per_message() -> LargeEstimate:
    """What one message sent to the large model costs, as the console's all-large baseline prices it
    over all time (support/analytics/stats.py BASELINE_METHOD)."""
    return baseline_per_message([0, 0, 0])


def cost_per_1000(point: Point, large: LargeEstimate) -> Decimal:
    """Small-tier answers at the small model's price (their encoder tokens), the rest at the large
    model's per-message estimate."""
    if not point.rows:
        return Decimal(0)
    small = costs.cost_usd(settings.TANDEM_SMALL_MODEL_NAME, point.answered_tokens, 0)
    large_usd = large.usd_per_message * (point.rows - point.answered)
    return (small + large_usd) * 1000 / point.rows


def _labels(model: SmallModel) -> Any:
    """The labels the serving model never learnt from (see the module's docstring)."""
    created = datetime.fromisoformat(str(model.meta["created_at"]))
    slugs = set(Article.objects.values_list("slug", flat=True))
    rows = []
    for message_id, text, kind, article, spot, given_at in Label.objects.order_by("message_id").values_list(
        "message_id", "message__text", "kind", "article", "spot_check", "given_at"
    ):
        if kind == LabelKind.ARTICLE and article not in slugs:
            continue
        if message_id % HELD_OUT_EVERY != 0 and given_at <= created:
            continue
        rows.append((text, article if kind == LabelKind.ARTICLE else "", SPOT_CHECK if spot else DESK_LABEL))
    return rows


def cache_key(model: SmallModel) -> tuple[Any, ...]:
    labels = Label.objects.aggregate(n=Count("id"), last=Max("given_at"))
    return (model.version, labels["n"], labels["last"], settings.TANDEM_OPERATING_POINT_MIN_LABELS)


def _route(model: SmallModel, rows: list[tuple[str, str, str]], base: Thresholds) -> list[Row]:
    scored = []
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        routed = route_many(model, [Incoming(text) for text, _, _ in chunk], base)
        for (_, label, source), result in zip(chunk, routed, strict=True):
            if result.signals is not None:
                scored.append(Row(result.signals, label, result.input_tokens, source))
    return scored


def knowledge_base_rows(model: SmallModel, base: Thresholds) -> list[Row]:
    """The knowledge base's examples the serving model was not trained on, scored now.

    Training keeps no per-row scores (meta.json has the hold-out's totals only), and this side may not
    change how artefacts are written, so they are scored again, honestly:
    - a model fine-tuned by a full training (`tuned_on.json` beside its encoder, no `refit_from`): its
      encoder and its classifier learnt only from the examples recorded there, so the others (the
      calibration split training chose its thresholds on, and any example added since) are routed
      through the serving model as they are;
    - a head refitted on a fine-tuned encoder, or a model on the frozen encoder: its classifier learnt from
      every example, so as training did, each row the encoder did not see is scored by a classifier fitted
      on the other rows (5 folds); those rows get the whole-message policy only (no segments).
    The built-in intents (small talk) are left out, as training leaves them out of the thresholds."""
    own = set(builtin())
    examples = [(text, label) for text, label in with_small_talk(training_examples()) if label not in own]
    if not examples:
        return []
    record = model.folder / "encoder" / small_model.TUNED_ON_FILE
    tuned: set[str] = set(json.loads(record.read_text())["texts"]) if record.exists() else set()
    unseen = np.array([small_model._text_key(text) not in tuned for text, _ in examples], dtype=bool)
    if not unseen.any():
        return []
    if record.exists() and not model.meta.get("refit_from"):
        rows = [(text, label, KNOWLEDGE_BASE) for (text, label), keep in zip(examples, unseen, strict=True) if keep]
        return _route(model, rows, base)
    texts = [text for text, _ in examples]
    labels = np.array([label for _, label in examples])
    vectors, tokens = model.encoder.embed_counting(texts)
    scores = classifier.held_out_scores(vectors, labels, unseen)
    limit = model.encoder.max_length
    kept = np.flatnonzero(unseen)
    found = []
    for index, intent, confidence, similarity in zip(
        kept, scores.intents, scores.confidences, scores.similarities, strict=True
    ):
        prediction = Prediction(str(intent), float(confidence), float(similarity), int(tokens[index]))
        signals = Signals(texts[index], prediction, language=base.language, truncated=prediction.input_tokens >= limit)
        found.append(Row(signals, str(labels[index]), prediction.input_tokens, KNOWLEDGE_BASE))
    return found


def _grid(rows: list[Row], extra: list[float]) -> list[float]:
    confidences = sorted(
        {round(part.prediction.confidence, 6) for row in rows for part in row.signals.parts}
        | {round(row.signals.whole.confidence, 6) for row in rows}
    )
    if len(confidences) > MAX_POINTS:
        levels = np.linspace(0, 1, MAX_POINTS)
        confidences = sorted({round(float(np.quantile(confidences, level, method="lower")), 6) for level in levels})
    return sorted(set(confidences) | {round(value, 6) for value in extra})


def points(rows: list[Row], base: Thresholds, thresholds: list[float]) -> list[Point]:
    found = []
    for threshold in thresholds:
        limits = replace(base, confidence=threshold)
        answered = right = tokens = 0
        for row in rows:
            route = decide(row.signals, limits)
            if route.answer:
                answered += 1
                tokens += row.tokens
                right += int(bool(row.label) and row.signals.whole.intent == row.label)
        found.append(Point(threshold, len(rows), answered, right, tokens))
    return found


_lock = threading.Lock()
_cache: dict[tuple[Any, ...], tuple[list[Row], dict[str, int], float]] = {}


def scored_rows(model: SmallModel, base: Thresholds) -> tuple[list[Row], dict[str, int], float]:
    """(rows, count per source, seconds it took), cached per model version and labels."""
    key = cache_key(model)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        started = time.monotonic()
        labelled = _labels(model)
        rows = _route(model, labelled, base)
        if len(rows) < settings.TANDEM_OPERATING_POINT_MIN_LABELS:
            rows += knowledge_base_rows(model, base)
        sources: dict[str, int] = {}
        for row in rows:
            sources[row.source] = sources.get(row.source, 0) + 1
        _cache.clear()  # one model serves at a time: keep only the latest entry
        _cache[key] = (rows, sources, time.monotonic() - started)
        return _cache[key]


def curve(model: SmallModel, extra: list[float] | None = None) -> Curve:
    """The serving model's curve. `extra`: thresholds that must be on it (those serving, trained)."""
    assert model.policy is not None
    # Scored against the model's own policy with settings applied (the out-of-scope floor stays as it
    # serves); the confidence varies.
    base = Thresholds.current(model.policy, version=model.version)
    rows, sources, seconds = scored_rows(model, base)
    trained = model.policy.confidence_threshold
    grid = _grid(rows, [trained, base.confidence, *(extra or [])])
    return Curve(model.version, base, trained, points(rows, base, grid), sources, seconds)

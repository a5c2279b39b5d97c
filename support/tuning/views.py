"""The operating point page: the serving model's curve of answered accuracy against the share the small
tier answers, with what each point costs; an admin picks a point (or types a target) and can revert."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chatbot.policy import Thresholds, operating_point
from chatbot.small.model import ModelNotTrained, get_small_model
from support.conversations.actions import ConversationError
from support.permissions import admin_required
from support.tuning import actions
from support.tuning.curve import Curve, LargeEstimate, Point, cost_per_1000, curve, large_per_message
from support.tuning.models import How, OperatingPointChange

CHANGES_SHOWN = 20


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}"


def _point_row(point: Point, large: LargeEstimate, serving: float, trained: float) -> dict[str, Any]:
    return {
        "threshold": str(round(point.threshold, 6)),
        "answered_pct": _pct(point.coverage),
        "escalated_pct": _pct(point.escalation),
        "accuracy_pct": _pct(point.accuracy),
        "answered": point.answered,
        "right": point.right,
        "cost": f"{cost_per_1000(point, large):.4f}",
        "serving": abs(point.threshold - serving) < 5e-7,
        "trained": abs(point.threshold - trained) < 5e-7,
    }


def _why(found: Point, chart: Curve, large: LargeEstimate) -> str:
    sources = ", ".join(f"{count} {source}" for source, count in chart.sources.items())
    return (
        f"On {chart.rows} rows ({sources}): answers {_pct(found.coverage)}% of messages, "
        f"{_pct(found.accuracy)}% of them right; ${cost_per_1000(found, large):.4f} per 1,000 messages."
    )


@require_GET
@admin_required
def page(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        "fixed_confidence": settings.TANDEM_CONFIDENCE_THRESHOLD,
        "fixed_similarity": settings.TANDEM_OOS_SIMILARITY,
        "changes": list(OperatingPointChange.objects.select_related("changed_by", "reverts")[:CHANGES_SHOWN]),
        "min_labels": settings.TANDEM_OPERATING_POINT_MIN_LABELS,
    }
    try:
        model = get_small_model()
    except ModelNotTrained:
        return render(request, "tuning/operating_point.html", context)
    if model.policy is None:
        return render(request, "tuning/operating_point.html", context)
    serving = Thresholds.current(model.policy, version=model.version)
    chosen = operating_point()
    chart = curve(model)
    large = large_per_message()
    trained = model.policy.confidence_threshold
    rows = [_point_row(point, large, serving.confidence, trained) for point in chart.points]
    now = chart.at(serving.confidence)
    context.update(
        model=model,
        serving=serving,
        trained=model.policy,
        # An operating point chosen for a model that no longer serves.
        stale=chosen if chosen is not None and chosen.version != model.version else None,
        chosen=chosen if chosen is not None and chosen.version == model.version else None,
        curve=chart,
        points=rows,
        now=_point_row(now, large, serving.confidence, trained) if now else None,
        large=large,
        small_model_name=settings.TANDEM_SMALL_MODEL_NAME,
        chart_data={
            "points": [
                {
                    "x": point.coverage * 100,
                    "y": None if point.accuracy is None else point.accuracy * 100,
                    **row,
                }
                for point, row in zip(chart.points, rows, strict=True)
            ],
        },
        can_pick=settings.TANDEM_CONFIDENCE_THRESHOLD is None,
        revertible={change.pk for change in context["changes"] if change.version == model.version},
    )
    return render(request, "tuning/operating_point.html", context)


def _percent(request: HttpRequest, name: str) -> float:
    try:
        value = float(request.POST.get(name, "").strip().rstrip("%")) / 100
    except ValueError:
        raise ConversationError("bad_target", "Type the target as a percentage, e.g. 95.") from None
    if not 0.0 <= value <= 1.0:
        raise ConversationError("bad_target", "A target is between 0 and 100 %.")
    return value


def _choose(request: HttpRequest, admin: User) -> str:
    model = get_small_model()
    version = request.POST.get("version", "")
    if version != model.version:
        raise ConversationError("model_changed", f"Model {model.version} serves now, not {version}: look again.")
    chart = curve(model)
    large = large_per_message()
    how = How(request.POST.get("how", How.POINT))
    target: float | None = None
    if how == How.ACCURACY:
        target = _percent(request, "target")
        found = chart.for_accuracy(target)
        if found is None:
            raise ConversationError("unreachable", f"No threshold reaches {_pct(target)}% answered accuracy.")
        intro = f"Lowest threshold with at least {_pct(target)}% answered accuracy. "
    elif how == How.ESCALATION:
        target = _percent(request, "target")
        found = chart.for_escalation(target)
        if found is None:
            lowest = min(point.escalation for point in chart.points) if chart.points else 1.0
            raise ConversationError(
                "unreachable", f"No threshold escalates as little as {_pct(target)}% (the least is {_pct(lowest)}%)."
            )
        intro = f"Highest threshold escalating at most {_pct(target)}% of messages. "
    elif how == How.POINT:
        try:
            threshold = float(request.POST.get("threshold", ""))
        except ValueError:
            raise ConversationError("bad_threshold", "Pick a point on the curve.") from None
        found = chart.at(threshold)
        if found is None:
            raise ConversationError("not_on_curve", "That point is no longer on the curve: pick again.")
        intro = ""
    else:
        raise ConversationError("bad_how", "Pick a point or type a target.")
    note = request.POST.get("note", "").strip()[:500]
    reason = intro + _why(found, chart, large) + (f" Note: {note}" if note else "")
    actions.choose(admin, model.version, found.threshold, how, reason, target)
    return (
        f"The small tier answers at confidence ≥ {found.threshold:.4f} for model {model.version} "
        "(every server process within seconds)."
    )


@admin_required
@require_POST
def choose(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)
    try:
        messages.success(request, _choose(request, request.user))
    except (ConversationError, ModelNotTrained) as error:
        messages.error(request, getattr(error, "message", str(error)))
    return redirect("operating-point")


@admin_required
@require_POST
def revert(request: HttpRequest, id: int) -> HttpResponse:
    assert isinstance(request.user, User)
    try:
        change = actions.revert(request.user, id)
        messages.success(request, f"Reverted: confidence threshold {change.to_confidence:.4f} serves again.")
    except ConversationError as error:
        messages.error(request, error.message)
    return redirect("operating-point")

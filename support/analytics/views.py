"""The stats API and the staff console."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from chatbot.policy import Thresholds
from chatbot.small.model import current_meta
from support.analytics.stats import BASELINE_METHOD, compute_stats, parse_range
from support.permissions import agent_required, is_agent

_TIER_LABELS = {"small": "Small model", "large": "Large model", "agent": "Agent"}


@require_GET
def stats_api(request: HttpRequest) -> JsonResponse:
    # An API answers with status codes a script can act on, not with a redirect to a login form.
    if not request.user.is_authenticated:
        return JsonResponse({"error": "authentication required"}, status=401)
    if not is_agent(request.user):
        return JsonResponse({"error": "staff only"}, status=403)
    try:
        date_from, date_to = parse_range(request.GET.get("from"), request.GET.get("to"))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(compute_stats(date_from, date_to))


def _pct(share: float) -> str:
    # Formatted here: templates would localise the decimal separator inside a CSS width.
    return f"{share * 100:.1f}"


@require_GET
@agent_required
def console(request: HttpRequest) -> HttpResponse:
    raw_from, raw_to = request.GET.get("from", ""), request.GET.get("to", "")
    context: dict[str, Any] = {
        "raw_from": raw_from,
        "raw_to": raw_to,
        "baseline_method": BASELINE_METHOD,
        "thresholds": Thresholds.current(),
        "thresholds_fixed": settings.TANDEM_CONFIDENCE_THRESHOLD is not None
        or settings.TANDEM_OOS_SIMILARITY is not None,
        "small_model": _small_model_meta(),
    }
    try:
        date_from, date_to = parse_range(raw_from, raw_to)
    except ValueError as exc:
        context["error"] = str(exc)
        return render(request, "analytics/console.html", context, status=400)

    stats = compute_stats(date_from, date_to)
    messages = stats["messages"]
    context.update(
        stats=stats,
        date_from=stats["from"],
        date_to=stats["to"],
        json_url=f"{reverse('stats-api')}?{urlencode({'from': stats['from'], 'to': stats['to']})}",
        tiers=[
            {
                "label": _TIER_LABELS[tier],
                "count": count,
                "share_pct": _pct(stats["share_answered"][tier]),
            }
            for tier, count in stats["answered"].items()
        ],
        escalation_pct=_pct(stats["escalation_rate"]),
        escalated=sum(stats["escalations_by_reason"].values()),
        reasons=[
            {"reason": reason, "count": n, "pct": _pct(n / messages if messages else 0.0)}
            for reason, n in stats["escalations_by_reason"].items()
        ],
    )
    return render(request, "analytics/console.html", context)


def _small_model_meta() -> dict[str, Any] | None:
    try:
        meta = current_meta()
    except (OSError, ValueError):
        # A missing or corrupt artefact must not take the console down with it.
        return None
    if meta is None:
        return None
    metrics = meta.get("metrics") or {}
    accuracy = metrics.get("holdout_accuracy")
    coverage, answered = metrics.get("holdout_coverage"), metrics.get("holdout_answered_accuracy")
    return {
        "policy": meta.get("policy"),
        "holdout_coverage": _pct(coverage) if isinstance(coverage, (int, float)) else None,
        "holdout_answered_accuracy": _pct(answered) if isinstance(answered, (int, float)) else None,
        "version": meta.get("version"),
        "encoder": meta.get("encoder"),
        "fine_tune": meta.get("fine_tune"),
        "created_at": meta.get("created_at"),
        "examples": meta.get("examples"),
        "intents": meta.get("intents"),
        "holdout_accuracy": _pct(accuracy) if isinstance(accuracy, (int, float)) else None,
    }

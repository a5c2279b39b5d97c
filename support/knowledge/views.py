"""The small model's page for admins: retrain on the agents' labels, compare, promote or discard, and
roll back to a kept model."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chatbot.small import versions
from support.conversations.actions import ConversationError
from support.knowledge import freshness, retraining, topics
from support.knowledge.models import TrainingRun, TrainingState
from support.permissions import admin_required
from support.review import checks
from support.review.models import Label

RUNS_SHOWN = 10


@admin_required
def model_page(request: HttpRequest) -> HttpResponse:
    """With ?partial=live only the part that refreshes while a run trains."""
    runs = list(TrainingRun.objects.select_related("started_by", "decided_by")[:RUNS_SHOWN])
    train, held = retraining.labelled_rows()
    context = {
        "versions": versions.versions(),
        "runs": runs,
        "busy": any(run.state in (TrainingState.QUEUED, TrainingState.RUNNING) for run in runs),
        "labels": Label.objects.count(),
        "spot": checks.accuracy(),
        "share_percent": f"{settings.TANDEM_SPOT_CHECK_SHARE * 100:g}",
        "growth": settings.TANDEM_RETRAIN_FULL_GROWTH,
        "labels_for_training": len(train),
        "labels_held_out": len(held),
        "topics": topics.new_topics() if request.GET.get("partial") != "live" else [],
    }
    if request.GET.get("partial") != "live":
        context["model_out_of_date"] = freshness.model_out_of_date()
    template = "knowledge/_model_live.html" if request.GET.get("partial") == "live" else "knowledge/model.html"
    return render(request, template, context)


def _admin_action(perform: Callable[[HttpRequest, User], str]) -> Callable[[HttpRequest], HttpResponse]:
    @admin_required
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        assert isinstance(request.user, User)
        try:
            messages.success(request, perform(request, request.user))
        except ConversationError as error:
            messages.error(request, error.message)
        return redirect("small-model")

    return view


def _run_id(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("run", ""))
    except ValueError:
        raise ConversationError("no_such_run", "There is no such training run.") from None


def _train(request: HttpRequest, admin: User) -> str:
    run = retraining.start(admin, full=request.POST.get("full") == "1")
    return f"Training run {run.pk} queued: this page shows its progress."


def _promote(request: HttpRequest, admin: User) -> str:
    run = retraining.promote(_run_id(request), admin)
    return f"Model {run.version} serves now (every server process picks it up within seconds)."


def _discard(request: HttpRequest, admin: User) -> str:
    run = retraining.discard(_run_id(request), admin)
    return f"Model {run.version} discarded."


def _roll_back(request: HttpRequest, admin: User) -> str:
    version = request.POST.get("version", "")
    retraining.roll_back(version, admin)
    return f"Model {version} serves again."


def _new_article(request: HttpRequest, admin: User) -> str:
    try:
        message_ids = [int(value) for value in request.POST.getlist("message")]
    except ValueError:
        raise ConversationError("no_messages", "None of those messages is labelled as a new topic.") from None
    article = topics.article_from_topic(
        admin, message_ids, request.POST.get("title", ""), request.POST.get("answer", ""), request.POST.get("slug", "")
    )
    return f"Article {article.slug!r} added with {article.phrasings.count()} phrasings: train a new model to use it."


train = _admin_action(_train)
new_article = _admin_action(_new_article)
promote = _admin_action(_promote)
discard = _admin_action(_discard)
roll_back = _admin_action(_roll_back)

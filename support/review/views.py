"""The agent review queue: escalated conversations, their transcripts, and the agent's controls."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from support.conversations import actions
from support.conversations.models import Conversation, Owner, Role, Tier
from support.permissions import agent_required

QUEUE_LENGTH = 100


@agent_required
def queue(request: HttpRequest) -> HttpResponse:
    """The queue page; with ?partial=live only the part a live update replaces (review/_live.html)."""
    show = request.GET.get("show", "open")
    conversations = Conversation.objects.select_related("agent")
    if show == "all":
        conversations = conversations.filter(messages__isnull=False).distinct().order_by("-updated_at")
    else:
        show = "open"
        conversations = conversations.filter(Q(escalated_at__isnull=False) | Q(owner=Owner.HUMAN)).order_by(
            "-escalated_at", "-updated_at"
        )
    rows = []
    for conversation in conversations[:QUEUE_LENGTH]:
        last_customer = conversation.messages.filter(role=Role.CUSTOMER).order_by("-created_at", "-id").first()
        large_answer = conversation.messages.filter(tier=Tier.LARGE).order_by("-created_at", "-id").first()
        rows.append({"conversation": conversation, "last_customer": last_customer, "large_answer": large_answer})
    template = "review/_queue_live.html" if request.GET.get("partial") == "live" else "review/queue.html"
    return render(request, template, {"rows": rows, "show": show})


@agent_required
def detail(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """A conversation's page; with ?partial=live only the parts a live update replaces."""
    conversation = get_object_or_404(Conversation.objects.select_related("agent"), pk=conversation_id)
    transcript = list(conversation.messages.select_related("author", "reply_to"))
    # A large-model answer held back because an agent took over: offered as the start of a reply.
    drafts = [m for m in transcript if m.tier == Tier.LARGE and not m.delivered]
    latest_reply = max((m.id for m in transcript if m.role == Role.AGENT), default=0)
    drafts = [m for m in drafts if m.id > latest_reply]
    context: dict[str, Any] = {
        "conversation": conversation,
        "transcript": transcript,
        "latest_draft": drafts[-1] if drafts else None,
        "owned_by_me": conversation.owner == Owner.HUMAN and conversation.agent_id == request.user.pk,
        "owned_by_other": conversation.owner == Owner.HUMAN and conversation.agent_id not in (None, request.user.pk),
        "max_chars": settings.TANDEM_MAX_MESSAGE_CHARS,
    }
    template = "review/_detail_live.html" if request.GET.get("partial") == "live" else "review/detail.html"
    return render(request, template, context)


def _agent_action(
    perform: Callable[[HttpRequest, User, uuid.UUID], str],
) -> Callable[[HttpRequest, uuid.UUID], HttpResponse]:
    """Run an action for a POSTed form; a refusal becomes a message on the conversation page."""

    @agent_required
    @require_POST
    def view(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
        get_object_or_404(Conversation, pk=conversation_id)
        try:
            # agent_required has already turned anonymous visitors away.
            assert isinstance(request.user, User)
            done = perform(request, request.user, conversation_id)
        except actions.ConversationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, done)
        return redirect("review-detail", conversation_id=conversation_id)

    return view


def _reply(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    text = request.POST.get("text", "")
    if len(text) > settings.TANDEM_MAX_MESSAGE_CHARS:
        raise actions.ConversationError(
            "text_too_long", f"The reply is longer than {settings.TANDEM_MAX_MESSAGE_CHARS} characters."
        )
    actions.post_agent_reply(conversation_id, agent, text)
    return "Reply sent."


def _take_over(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.take_over(conversation_id, agent)
    return "You are handling this conversation: the bot stays quiet until you hand it back."


def _hand_back(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.hand_back(conversation_id, agent)
    return "Handed back to the bot."


def _close(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.close(conversation_id, agent)
    return "Conversation closed."


reply = _agent_action(_reply)
take_over = _agent_action(_take_over)
hand_back = _agent_action(_hand_back)
close = _agent_action(_close)

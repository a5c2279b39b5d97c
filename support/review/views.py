"""The agent review queue: escalated conversations, their transcripts, and the agent's controls."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from chatbot.routes import Destination, Reason
from support.conversations import actions
from support.conversations.models import Conversation, Message, Owner, Rating, ReviewState, Tier
from support.knowledge.models import Article
from support.permissions import ROLE_GROUPS, admin_required, agent_required, is_admin, is_agent
from support.review import actions as review_actions
from support.review import checks as review_checks
from support.review import labels as review_labels
from support.review import queue as review_queue
from support.review.models import CannedReply, LabelKind, Note


@agent_required
def queue(request: HttpRequest) -> HttpResponse:
    """The queue page; with ?partial=live only the part a live update replaces (review/_queue_live.html)."""
    assert isinstance(request.user, User)
    filters = review_queue.Filters.from_query(request.GET)
    context = {
        "queue": review_queue.build(filters, request.user),
        "filters": filters,
        "sorts": review_queue.SORT_LABELS,
        "destinations": [d.value for d in Destination if d != Destination.SMALL],
        "reasons": [r.value for r in Reason],
        "intents": list(Article.objects.order_by("slug").values_list("slug", flat=True)),
        "now": timezone.now(),
        "online": review_actions.online_agents(),
    }
    if request.GET.get("partial") == "live":
        return render(request, "review/_queue_live.html", context)
    context["spot_checks_waiting"] = review_checks.waiting().count()
    return render(request, "review/queue.html", context)


SNIPPETS = 10


@agent_required
def snippets(request: HttpRequest) -> JsonResponse:
    """Canned replies and knowledge-base answers matching ?q= (every word, in the title or the text),
    for the reply box's "insert" search."""
    words = request.GET.get("q", "")[:200].split()[:8]
    canned = CannedReply.objects.all()
    articles = Article.objects.order_by("title")
    for word in words:
        canned = canned.filter(Q(title__icontains=word) | Q(text__icontains=word))
        articles = articles.filter(Q(title__icontains=word) | Q(answer__icontains=word) | Q(slug__icontains=word))
    results = [{"kind": "canned", "title": reply.title, "text": reply.text} for reply in canned[:SNIPPETS]]
    if words:
        results += [
            {"kind": "article", "title": article.title, "text": article.answer, "slug": article.slug}
            for article in articles[: SNIPPETS - len(results)]
        ]
    return JsonResponse({"results": results[:SNIPPETS]})


@agent_required
def detail(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """A conversation's page; with ?partial=live only the parts a live update replaces."""
    conversation = get_object_or_404(Conversation.objects.select_related("agent"), pk=conversation_id)
    transcript = list(
        conversation.messages.select_related("author", "reply_to", "reviewed_by").prefetch_related("answer_ratings")
    )
    # Large-model answers not sent: each waits for an agent to send it, edit it or reject it.
    drafts = [m for m in transcript if m.tier == Tier.LARGE and m.review_state == ReviewState.WAITING]
    context: dict[str, Any] = {
        "conversation": conversation,
        "transcript": transcript,
        # The customer's rating of the whole conversation (each answer's is on the answer: answer_ratings).
        "conversation_rating": Rating.objects.filter(conversation=conversation, message=None).first(),
        "drafts": drafts,
        "articles": _articles(m for m in transcript if m.sources),
        "owned_by_me": conversation.owner == Owner.HUMAN and conversation.agent_id == request.user.pk,
        "owned_by_other": conversation.owner == Owner.HUMAN and conversation.agent_id not in (None, request.user.pk),
        "max_chars": settings.TANDEM_MAX_MESSAGE_CHARS,
        "label_questions": review_labels.questions(transcript),
        "all_articles": list(Article.objects.order_by("title").values_list("slug", "title")),
        "notes": list(Note.objects.filter(conversation=conversation).select_related("author")),
        "is_admin": is_admin(request.user),
        "agents": _agents() if is_admin(request.user) else [],
    }
    template = "review/_detail_live.html" if request.GET.get("partial") == "live" else "review/detail.html"
    return render(request, template, context)


def _articles(answers: Any) -> dict[str, Article]:
    """The articles the conversation's large-model answers were given, by slug (for their sources)."""
    slugs = {source["slug"] for answer in answers for source in answer.sources}
    return Article.objects.in_bulk(list(slugs), field_name="slug")


def _agents() -> list[User]:
    """Everyone an admin may assign a conversation to."""
    candidates = (
        User.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=ROLE_GROUPS))
        .distinct()
        .order_by("first_name", "username")
    )
    return [user for user in candidates if is_agent(user)]


def _agent_action(
    perform: Callable[[HttpRequest, User, uuid.UUID], str],
    required: Callable[[Any], Any] = agent_required,
) -> Callable[[HttpRequest, uuid.UUID], HttpResponse]:
    """Run an action for a POSTed form; a refusal becomes a message on the conversation page."""

    @required
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
    actions.post_agent_reply(conversation_id, agent, request.POST.get("text", ""))
    return "Reply sent."


def _draft_id(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("draft", ""))
    except ValueError:
        raise actions.ConversationError("no_such_draft", "There is no such draft in this conversation.") from None


def _approve(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.approve_draft(conversation_id, _draft_id(request), agent)
    return "The draft was sent to the customer."


def _send_edited(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.send_edited_draft(conversation_id, _draft_id(request), agent, request.POST.get("text", ""))
    return "Your edited answer was sent to the customer."


def _reject(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.reject_draft(conversation_id, _draft_id(request), agent, request.POST.get("reason", ""))
    return "The draft was rejected; the customer still waits for your answer."


def _take_over(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.take_over(conversation_id, agent)
    return "You are handling this conversation: the bot stays quiet until you hand it back."


def _hand_back(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.hand_back(conversation_id, agent)
    return "Handed back to the bot."


def _close(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    actions.close(conversation_id, agent)
    return "Conversation closed."


def _assign(request: HttpRequest, admin: User, conversation_id: uuid.UUID) -> str:
    try:
        agent = User.objects.get(pk=int(request.POST.get("agent", "")))
    except (ValueError, User.DoesNotExist):
        raise actions.ConversationError("not_an_agent", "Choose an agent to assign it to.") from None
    actions.assign(conversation_id, admin, agent)
    return f"Assigned to {agent.first_name or agent.get_username()}."


def _note(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    review_actions.add_note(conversation_id, agent, request.POST.get("text", ""))
    return "Note added (agents only: the customer never sees it)."


def _labelled_message(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("message", ""))
    except ValueError:
        raise actions.ConversationError("no_such_message", "There is no such customer message.") from None


def _label_choice(request: HttpRequest) -> tuple[str, str, str]:
    """(kind, article, what was proposed) from a label form's `choice` ("article:<slug>:<why>", "other"
    with `other_article`, "new_topic" or "not_support")."""
    choice = request.POST.get("choice", "")
    if choice.startswith("article:"):
        _, article, proposed = (choice.split(":", 2) + [""])[:3]
        return LabelKind.ARTICLE, article, proposed
    if choice == "other":
        return LabelKind.ARTICLE, request.POST.get("other_article", ""), ""
    return choice, "", ""


def _label(request: HttpRequest, agent: User, conversation_id: uuid.UUID) -> str:
    message_id = _labelled_message(request)
    if not Message.objects.filter(pk=message_id, conversation_id=conversation_id).exists():
        raise actions.ConversationError("no_such_message", "There is no such customer message.")
    label = review_actions.label_message(message_id, agent, *_label_choice(request))
    return f"Labelled: {label.article or label.get_kind_display()}. Thank you — the next training uses it."


@agent_required
def spot_checks(request: HttpRequest) -> HttpResponse:
    """A random sample of the small tier's answers for agents to check, and what the checks found."""
    waiting = list(review_checks.waiting().select_related("conversation")[: review_checks.PAGE_SIZE])
    sent: dict[int, list[str]] = {}
    for answer in Message.objects.filter(reply_to__in=waiting, tier=Tier.SMALL).order_by("id"):
        assert answer.reply_to_id is not None
        sent.setdefault(answer.reply_to_id, []).append(answer.text)
    titles = dict(Article.objects.values_list("slug", "title"))
    context = {
        "checks": [
            (message, titles.get(message.intent, message.intent), sent.get(message.pk, [])) for message in waiting
        ],
        "waiting": review_checks.waiting().count(),
        "accuracy": review_checks.accuracy(),
        "share": settings.TANDEM_SPOT_CHECK_SHARE,
        "share_percent": f"{settings.TANDEM_SPOT_CHECK_SHARE * 100:g}",
        "all_articles": sorted(((slug, title) for slug, title in titles.items()), key=lambda item: item[1]),
    }
    return render(request, "review/checks.html", context)


@agent_required
@require_POST
def check(request: HttpRequest) -> HttpResponse:
    """An agent's verdict on one sampled answer: the article that answers the question (the one sent,
    pre-selected, or another), a new topic, or not a support question."""
    assert isinstance(request.user, User)
    try:
        label = review_actions.label_message(
            _labelled_message(request), request.user, *_label_choice(request), spot_check=True
        )
    except actions.ConversationError as error:
        messages.error(request, error.message)
    else:
        verdict = "right" if label.article and label.article == label.message.intent else "wrong"
        messages.success(request, f"Checked: the answer was {verdict}. Thank you — this measures the small tier.")
    return redirect("review-checks")


reply = _agent_action(_reply)
take_over = _agent_action(_take_over)
hand_back = _agent_action(_hand_back)
close = _agent_action(_close)
assign = _agent_action(_assign, admin_required)
approve_draft = _agent_action(_approve)
send_edited_draft = _agent_action(_send_edited)
reject_draft = _agent_action(_reject)
note = _agent_action(_note)
label = _agent_action(_label)

"""The agents' queue: which conversations a filter shows, in what order, a page at a time, and how many
each choice of filter would show. Read-only; the page and its live updates render what this returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.http import QueryDict

from chatbot.routes import Destination, Reason
from support.conversations import search
from support.conversations.models import Conversation, Message, Owner, Rating, Role, Tier

PAGE_SIZE = 25
# Longest search text taken (the rest is ignored), and most words in it.
SEARCH_CHARS = 200
SEARCH_WORDS = 8

# A customer waits for an answer: from the large model (pending) or from people.
WAITING = Q(escalated_at__isnull=False, owner__in=[Owner.PENDING, Owner.PEOPLE, Owner.HUMAN])
CLOSED = Q(owner=Owner.CLOSED)
# Conversations the desk knows of: escalated at some point, or handled by people.
ON_THE_DESK = ~Q(escalation_destination="") | Q(owner__in=[Owner.PEOPLE, Owner.HUMAN, Owner.CLOSED])
STATES: dict[str, Q] = {
    "waiting": WAITING,
    "answered": ON_THE_DESK & ~WAITING & ~CLOSED,
    "closed": CLOSED & ON_THE_DESK,
    "all": ON_THE_DESK,
}
STATE_LABELS = {"waiting": "Waiting", "answered": "Answered", "closed": "Closed", "all": "All"}
OWNER_LABELS = {"anyone": "Anyone", "mine": "Mine", "unassigned": "Unassigned"}
SORTS: dict[str, tuple[Any, ...]] = {
    # Oldest escalation first: the customer who has waited longest is on top.
    "waiting": (F("escalated_at").asc(nulls_last=True), "-updated_at"),
    "newest": (F("escalated_at").desc(nulls_last=True), "-updated_at"),
    "updated": ("-updated_at",),
}
SORT_LABELS = {"waiting": "Waiting longest", "newest": "Newest escalation", "updated": "Last activity"}


@dataclass
class Filters:
    state: str = "waiting"
    owner: str = "anyone"
    destination: str = ""
    reason: str = ""
    intent: str = ""
    search: str = ""
    sort: str = "waiting"
    page: int = 1
    # What was asked for but is not a valid choice, to say so on the page.
    ignored: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, query: QueryDict) -> Filters:
        filters = cls()
        choices: dict[str, Any] = {
            "state": STATES,
            "owner": OWNER_LABELS,
            "destination": {"", *(d.value for d in Destination if d != Destination.SMALL)},
            "reason": {"", *(r.value for r in Reason)},
            "sort": SORTS,
        }
        for name, allowed in choices.items():
            value = query.get(name)
            if value is None:
                continue
            if value in allowed:
                setattr(filters, name, value)
            else:
                filters.ignored.append(name)
        filters.intent = query.get("intent", "").strip()[:100]
        filters.search = " ".join(query.get("q", "")[:SEARCH_CHARS].split())
        try:
            filters.page = max(1, int(query.get("page", "1")))
        except ValueError:
            filters.ignored.append("page")
        return filters

    def query(self, **changes: Any) -> str:
        """This filter's query string, with `changes` (a new filter starts at page 1)."""
        values = {
            "state": self.state,
            "owner": self.owner,
            "destination": self.destination,
            "reason": self.reason,
            "intent": self.intent,
            "q": self.search,
            "sort": self.sort,
            "page": "",
        }
        values.update({("q" if key == "search" else key): value for key, value in changes.items()})
        query = QueryDict(mutable=True)
        for key, value in values.items():
            if value not in ("", None) and not (key == "page" and str(value) == "1"):
                query[key] = str(value)
        return query.urlencode()


def _owned(filters: Filters, user: User) -> Q:
    if filters.owner == "mine":
        return Q(owner=Owner.HUMAN, agent=user)
    if filters.owner == "unassigned":
        return ~Q(owner=Owner.HUMAN) | Q(agent__isnull=True)
    return Q()


def _narrowed(filters: Filters) -> QuerySet[Conversation]:
    """Every filter except state and owner (those are the tabs with counts)."""
    conversations = Conversation.objects.all()
    if filters.destination:
        conversations = conversations.filter(escalation_destination=filters.destination)
    if filters.reason:
        conversations = conversations.filter(escalation_reason=filters.reason)
    if filters.intent:
        conversations = conversations.filter(
            Exists(Message.objects.filter(conversation=OuterRef("pk"), role=Role.CUSTOMER, intent=filters.intent))
        )
    # Full-text search: every word (in any of its forms; the last one also as the start of a longer
    # word, as it may be half typed) somewhere in the conversation's messages, not necessarily in one.
    searched = search.words(filters.search)[:SEARCH_WORDS]
    for position, word in enumerate(searched):
        matching = search.messages_matching(word, prefix=position == len(searched) - 1)
        if matching is not None:
            conversations = conversations.filter(Exists(matching.filter(conversation=OuterRef("pk"))))
    return conversations


@dataclass
class Tab:
    key: str
    label: str
    count: int
    href: str
    current: bool


@dataclass
class Queue:
    filters: Filters
    page: Page[Any]
    state_counts: dict[str, int]
    owner_counts: dict[str, int]
    # When the customer waiting longest (among all this filter shows, not only this page) began to wait.
    oldest_waiting: datetime | None

    @property
    def state_tabs(self) -> list[Tab]:
        return [
            Tab(key, label, self.state_counts[key], "?" + self.filters.query(state=key), key == self.filters.state)
            for key, label in STATE_LABELS.items()
        ]

    @property
    def owner_tabs(self) -> list[Tab]:
        return [
            Tab(key, label, self.owner_counts[key], "?" + self.filters.query(owner=key), key == self.filters.owner)
            for key, label in OWNER_LABELS.items()
        ]

    def page_href(self, number: int) -> str:
        return "?" + self.filters.query(page=number)

    @property
    def previous_href(self) -> str | None:
        return self.page_href(self.page.previous_page_number()) if self.page.has_previous() else None

    @property
    def next_href(self) -> str | None:
        return self.page_href(self.page.next_page_number()) if self.page.has_next() else None

    @property
    def clear_href(self) -> str:
        return "?" + self.filters.query(destination="", reason="", intent="", search="")


def _count(ratings: QuerySet[Rating]) -> QuerySet[Any]:
    return ratings.values("conversation").annotate(n=Count("pk")).values("n")[:1]


def build(filters: Filters, user: User) -> Queue:
    narrowed = _narrowed(filters)
    owned = _owned(filters, user)
    state_counts = narrowed.filter(owned).aggregate(
        **{state: Count("pk", filter=condition) for state, condition in STATES.items()}
    )
    in_state = narrowed.filter(STATES[filters.state])
    owner_counts = in_state.aggregate(
        anyone=Count("pk"),
        mine=Count("pk", filter=Q(owner=Owner.HUMAN, agent=user)),
        unassigned=Count("pk", filter=~Q(owner=Owner.HUMAN) | Q(agent__isnull=True)),
    )
    shown = in_state.filter(owned)
    oldest = shown.filter(WAITING).order_by("escalated_at").values_list("escalated_at", flat=True).first()
    customer = Message.objects.filter(conversation=OuterRef("pk"), role=Role.CUSTOMER).order_by("-created_at", "-id")
    large = Message.objects.filter(conversation=OuterRef("pk"), tier=Tier.LARGE).order_by("-created_at", "-id")
    ratings = Rating.objects.filter(conversation=OuterRef("pk")).order_by()
    down = ratings.filter(score__lt=0)
    rows = (
        shown.select_related("agent")
        .annotate(
            last_customer_text=Subquery(customer.values("text")[:1]),
            last_customer_intent=Subquery(customer.values("intent")[:1]),
            last_customer_confidence=Subquery(customer.values("confidence")[:1]),
            large_text=Subquery(large.values("text")[:1]),
            large_delivered=Subquery(large.values("delivered")[:1]),
            # The customer's ratings (of answers and of the whole conversation), and what the latest
            # thumbs down said.
            rated_up=Subquery(_count(ratings.filter(score__gt=0))),
            rated_down=Subquery(_count(down)),
            rated_down_comment=Subquery(down.exclude(comment="").order_by("-updated_at").values("comment")[:1]),
        )
        .order_by(*SORTS[filters.sort])
    )
    paginator = Paginator(rows, PAGE_SIZE)
    page = paginator.get_page(filters.page)
    return Queue(filters, page, state_counts, owner_counts, oldest)

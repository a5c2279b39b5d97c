"""What the agents' desk keeps beside a conversation."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from support.conversations.models import Conversation, Message


class Note(models.Model):
    """An internal note on a conversation: for agents only, never sent to the customer."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Note on {self.conversation_id}: {self.text[:40]}"


class Presence(models.Model):
    """An agent's open desk page: one row per staff socket, seen again at each ping of the page. An agent
    with a row seen within PRESENCE_SECONDS is online (a server that died leaves rows that simply age)."""

    channel_name = models.CharField(max_length=200, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.user_id} on {self.channel_name}"


class LabelKind(models.TextChoices):
    ARTICLE = "article", "Answered by an article"
    NEW_TOPIC = "new_topic", "New topic (no article answers it)"
    NOT_SUPPORT = "not_support", "Not a support question"


class Label(models.Model):
    """What an agent said a customer's message was about: the ground truth the small model is retrained
    on and measured against. One per message; a later label replaces it (who and when come with it)."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="label")
    kind = models.CharField(max_length=16, choices=LabelKind.choices)
    # The article's slug (kept as text: a label outlives an article deleted later).
    article = models.CharField(max_length=100, blank=True)
    # What the desk had pre-selected: "draft" (the article a sent draft was grounded on), "guess" (the
    # small model's), "answer" (the article the small tier answered with, in a spot check), or "" (the
    # agent chose another).
    proposed = models.CharField(max_length=16, blank=True)
    # Given in a spot check of a small-tier answer (support/review/checks.py): a random sample of
    # traffic, where other labels are of the messages the small model escalated.
    spot_check = models.BooleanField(default=False)
    given_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    given_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.message_id}: {self.kind} {self.article}".strip()


class CannedReply(models.Model):
    """A reply agents insert with a click (and edit before sending); admins keep them in the admin site."""

    title = models.CharField(max_length=200, unique=True)
    text = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

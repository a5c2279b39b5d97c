"""What the agents' desk keeps beside a conversation."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from support.conversations.models import Conversation


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

from __future__ import annotations

from django.db import models


class Article(models.Model):
    """One answer in the knowledge base; its slug doubles as the small model's intent label."""

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=300)
    answer = models.TextField()
    tags = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.title


class Phrasing(models.Model):
    """An example of how a customer asks for an article: training data for the small model."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="phrasings")
    text = models.CharField(max_length=500)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

# A slug is the small model's intent label, and the same rule holds for knowledge-base files.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,99}$"
slug_validator = RegexValidator(SLUG_PATTERN, "Lowercase letters, digits and hyphens, starting with a letter or digit.")


class LiveArticles(models.Manager["Article"]):
    def get_queryset(self) -> models.QuerySet[Article]:
        return super().get_queryset().filter(retired_at__isnull=True)


class Article(models.Model):
    """One answer in the knowledge base; its slug doubles as the small model's intent label.

    A retired article is kept (its slug still names agents' labels and past answers' sources) but is
    no longer answered, given to the large model, offered for labels nor trained on: `Article.objects`,
    which the rest of Tandem reads, holds the live articles only; `Article.every` (the default manager,
    used by the admin site and for uniqueness checks) holds them all."""

    slug = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=300)
    answer = models.TextField()
    tags = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    every = models.Manager()
    objects = LiveArticles()

    class Meta:
        ordering = ["slug"]
        default_manager_name = "every"

    def __str__(self) -> str:
        return self.title

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


class Phrasing(models.Model):
    """An example of how a customer asks for an article: training data for the small model."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="phrasings")
    text = models.CharField(max_length=500)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text


class TrainingState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Training"
    TRAINED = "trained", "Trained: waiting for a decision"
    FAILED = "failed", "Failed"
    PROMOTED = "promoted", "Promoted"
    DISCARDED = "discarded", "Discarded"


class TrainingRun(models.Model):
    """One retraining of the small model on the knowledge base and agents' labels, started by an admin:
    its progress, the candidate it made, and how the candidate and the model serving then compare on
    labelled traffic neither was trained on."""

    state = models.CharField(max_length=16, choices=TrainingState.choices, default=TrainingState.QUEUED)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The latest step the training reported, and when (a run whose heartbeat stops has died).
    progress = models.CharField(max_length=300, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The candidate's version (its folder in TANDEM_SMALL_MODEL_DIR), and the version serving when it
    # was compared.
    version = models.CharField(max_length=64, blank=True)
    compared_with = models.CharField(max_length=64, blank=True)
    # Asked for a full training (the encoder fine-tuned again) rather than the usual choice.
    full = models.BooleanField(default=False)
    # What it did: "head" (a new head on the serving model's fine-tuned encoder) or "full".
    kind = models.CharField(max_length=8, blank=True)
    examples = models.PositiveIntegerField(default=0)
    labels_used = models.PositiveIntegerField(default=0)
    # {"held_out": n, "candidate": {coverage, answered_accuracy, accuracy}, "current": {...}}
    figures = models.JSONField(default=dict, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Training run {self.pk}: {self.state}"

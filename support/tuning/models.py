"""The audit log of the router's operating point: every confidence threshold an admin chose (or reverted
to), for which model version, by whom, when, from what to what, and how it was chosen."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class How(models.TextChoices):
    POINT = "point", "Point picked on the curve"
    ACCURACY = "accuracy", "Target answered accuracy"
    ESCALATION = "escalation", "Target escalation rate"
    REVERT = "revert", "Revert"


class OperatingPointChange(models.Model):
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # The small model version the threshold belongs to (it never applies to another).
    version = models.CharField(max_length=64)
    # The confidence threshold in force before and after; `*_override` False means the model's trained
    # threshold (no operating point chosen), so a revert can return to "trained" and not to a number.
    from_confidence = models.FloatField()
    from_override = models.BooleanField()
    to_confidence = models.FloatField()
    to_override = models.BooleanField()
    how = models.CharField(max_length=16, choices=How.choices)
    # The target typed (an accuracy or an escalation rate), for those ways of choosing.
    target = models.FloatField(null=True, blank=True)
    # Why: what the curve promised at that threshold, on which rows; or which change was reverted.
    reason = models.TextField(blank=True)
    reverts = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.version}: {self.from_confidence:.3f} → {self.to_confidence:.3f} ({self.how})"

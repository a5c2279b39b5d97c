"""Every write of the operating point: the file the router reads (chatbot.policy, in every server process
within a message) and the audit row, together."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chatbot.policy import OperatingPoint, operating_point, write_operating_point
from chatbot.small.model import current_meta
from support.conversations.actions import ConversationError
from support.permissions import is_admin
from support.tuning.models import How, OperatingPointChange

logger = logging.getLogger(__name__)


def fixed_by_settings() -> bool:
    """TANDEM_CONFIDENCE_THRESHOLD is set: it wins over any operating point, so none may be chosen."""
    return settings.TANDEM_CONFIDENCE_THRESHOLD is not None


def _check(admin: User, version: str) -> float:
    """The serving model's trained confidence threshold, once the change is allowed."""
    if not is_admin(admin):
        raise ConversationError("not_an_admin", "Only an admin chooses the operating point.")
    if fixed_by_settings():
        raise ConversationError(
            "fixed_by_settings",
            "TANDEM_CONFIDENCE_THRESHOLD is set in the environment: it serves, whatever is chosen here.",
        )
    meta = current_meta()
    if meta is None or "policy" not in meta:
        raise ConversationError("no_model", "No trained small model serves: there is nothing to tune.")
    if meta["version"] != version:
        raise ConversationError(
            "model_changed", f"Model {meta['version']} serves now, not {version}: look at its curve first."
        )
    return float(meta["policy"]["confidence_threshold"])


def _in_force(version: str, trained: float) -> tuple[float, bool]:
    chosen = operating_point()
    if chosen is not None and chosen.version == version:
        return chosen.confidence, True
    return trained, False


def _apply(
    admin: User,
    version: str,
    confidence: float | None,
    how: How,
    reason: str,
    target: float | None = None,
    reverts: OperatingPointChange | None = None,
) -> OperatingPointChange:
    """Serve `confidence` for model `version` (None: its trained threshold) and record who did it."""
    trained = _check(admin, version)
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise ConversationError("bad_threshold", "A confidence threshold is between 0 and 1.")
    with transaction.atomic():
        before, overridden = _in_force(version, trained)
        change = OperatingPointChange.objects.create(
            changed_by=admin,
            version=version,
            from_confidence=before,
            from_override=overridden,
            to_confidence=trained if confidence is None else confidence,
            to_override=confidence is not None,
            how=how,
            target=target,
            reason=reason,
            reverts=reverts,
        )
        # Written inside the transaction: if it fails, no audit row claims a change that did not happen.
        point = None
        if confidence is not None:
            point = OperatingPoint(
                version=version,
                confidence=confidence,
                chosen_by=f"{admin.get_username()} (change {change.pk})",
                chosen_at=timezone.now().isoformat(),
            )
        write_operating_point(point)
    logger.info("%s set the confidence threshold of %s to %s (%s)", admin.get_username(), version, confidence, how)
    return change


def choose(
    admin: User, version: str, confidence: float, how: How, reason: str, target: float | None = None
) -> OperatingPointChange:
    return _apply(admin, version, confidence, how, reason, target)


def revert(admin: User, change_id: int) -> OperatingPointChange:
    """Go back to what served before change `change_id` (its trained threshold, or the point before)."""
    try:
        change = OperatingPointChange.objects.get(pk=change_id)
    except OperatingPointChange.DoesNotExist:
        raise ConversationError("no_such_change", "There is no such change.") from None
    restored = change.from_confidence if change.from_override else None
    what = f"{restored:.3f}" if restored is not None else "the trained threshold"
    return _apply(
        admin, change.version, restored, How.REVERT, f"Reverted change {change.pk}: back to {what}.", None, change
    )

"""Giving people their role: the one place that puts an account in the Agents or Admins group."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db import transaction

from support.permissions import ADMINS_GROUP, AGENTS_GROUP


def make_agent(user: User, admin: bool = False) -> User:
    """Make `user` an agent, or an admin (an admin may also open the Django admin site)."""
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=ADMINS_GROUP if admin else AGENTS_GROUP)
        user.groups.add(group)
        if admin and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    # A cached answer of the permission checks is stale now.
    user.__dict__.pop("_tandem_groups", None)
    return user

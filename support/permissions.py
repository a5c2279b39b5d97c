"""Who may do what on the agents' side: the two roles, as Django groups, and the one check for each.

Agents answer, claim and label conversations. Admins do all that, and also assign conversations to
agents, retrain and promote the small model and change settings in the console. A superuser (the run
command's admin) is an admin. `manage.py create_agent` makes either.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.http import HttpRequest

AGENTS_GROUP = "Agents"
ADMINS_GROUP = "Admins"
ROLE_GROUPS = (AGENTS_GROUP, ADMINS_GROUP)


def _groups(user: Any) -> frozenset[str]:
    # Read once per user object (a request's user lives for the request; a socket's for the socket).
    cached = getattr(user, "_tandem_groups", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLE_GROUPS).values_list("name", flat=True))
        user._tandem_groups = cached
    return cached


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_admin(user: Any) -> bool:
    """An active superuser or member of the Admins group."""
    return _active(user) and (bool(user.is_superuser) or ADMINS_GROUP in _groups(user))


def is_agent(user: Any) -> bool:
    """An active member of the Agents group, or an admin (admins are agents too)."""
    return _active(user) and (AGENTS_GROUP in _groups(user) or is_admin(user))


# For pages: anyone else is sent to the login page.
agent_required = user_passes_test(is_agent, login_url=settings.LOGIN_URL)
admin_required = user_passes_test(is_admin, login_url=settings.LOGIN_URL)


class AdminsOnly:
    """Admin-site access for Tandem's admins (the Admins group, not only superusers with model
    permissions): mixed into the ModelAdmins and inlines of the models admins keep."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

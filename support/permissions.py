"""Who is an agent: the one staff check, for views, the stats API and the staff socket."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import user_passes_test


def is_agent(user: Any) -> bool:
    """An active staff account (admins are agents too)."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


# For pages: anyone else is sent to the login page.
agent_required = user_passes_test(is_agent, login_url=settings.LOGIN_URL)

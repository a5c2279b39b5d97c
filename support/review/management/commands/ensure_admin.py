from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.review.roles import make_agent


class Command(BaseCommand):
    help = (
        "Create the admin (a superuser in the Admins group, so also an agent) if missing; "
        "the password comes from TANDEM_ADMIN_PASSWORD."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--set-password", action="store_true", help="also give an existing account this password")

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("TANDEM_ADMIN_PASSWORD", "")
        if not password:
            raise CommandError("set TANDEM_ADMIN_PASSWORD")
        users = get_user_model()
        user, created = users.objects.get_or_create(
            username=options["username"], defaults={"is_staff": True, "is_superuser": True}
        )
        # Without --set-password only a new account gets the password: one changed in the admin site is kept.
        if created or options["set_password"]:
            user.set_password(password)
            user.save()
            self.stdout.write(f"{'Created' if created else 'Updated'} the admin user {user.username!r}.")
        make_agent(user, admin=True)

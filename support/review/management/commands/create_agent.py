from __future__ import annotations

import secrets
import sys
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from support.review.roles import make_agent


class Command(BaseCommand):
    help = (
        "Create a support agent (or, with --admin, an admin) who signs in at /accounts/login/. The password is "
        "read from standard input with --password-stdin; otherwise one is generated and printed this once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="the first name customers see on the agent's replies")
        parser.add_argument("--email", default="")
        parser.add_argument("--admin", action="store_true", help="an admin: also assigns, retrains and promotes")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"].strip()
        if not username:
            raise CommandError("the username is empty")
        if User.objects.filter(username=username).exists():
            raise CommandError(f"an account {username!r} exists already (the admin site changes its groups)")
        generated = not options["password_stdin"]
        password = secrets.token_urlsafe(12) if generated else sys.stdin.readline().rstrip("\n")
        if not password:
            raise CommandError("the password read from standard input is empty")
        with transaction.atomic():
            user = User.objects.create_user(
                username, email=options["email"], password=password, first_name=options["name"]
            )
            make_agent(user, admin=options["admin"])
        role = "admin" if options["admin"] else "agent"
        self.stdout.write(f"Created the {role} {username!r}.")
        if generated:
            self.stdout.write(f"Password: {password}   (shown this once: keep it now)")

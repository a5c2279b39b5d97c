"""Agents and admins: two groups, one check each, and the commands that give people their role."""

from __future__ import annotations

import importlib
import io

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError

from support.permissions import ADMINS_GROUP, AGENTS_GROUP, is_admin, is_agent
from support.review.roles import make_agent

pytestmark = pytest.mark.django_db


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def test_an_agent_answers_but_is_not_an_admin(agent: User) -> None:
    assert is_agent(fresh(agent)) and not is_admin(fresh(agent))


def test_a_superuser_and_a_member_of_admins_are_admins_and_agents(admin_user: User) -> None:
    group_admin = make_agent(User.objects.create_user("lee"), admin=True)
    for user in (admin_user, group_admin):
        assert is_admin(fresh(user)) and is_agent(fresh(user))
    assert fresh(group_admin).is_staff, "an admin may open the admin site"


def test_a_staff_flag_alone_or_a_visitor_account_is_no_role(visitor: User) -> None:
    staff = User.objects.create_user("staff-only", is_staff=True)
    for user in (staff, visitor):
        assert not is_agent(fresh(user)) and not is_admin(fresh(user))


def test_an_inactive_agent_or_admin_has_no_role(agent: User) -> None:
    admin = make_agent(User.objects.create_user("former-admin"), admin=True)
    for user in (agent, admin):
        User.objects.filter(pk=user.pk).update(is_active=False)
        assert not is_agent(fresh(user)) and not is_admin(fresh(user))


def test_create_agent_prints_a_generated_password_once_and_it_signs_in() -> None:
    out = io.StringIO()
    call_command("create_agent", "robin", "--name", "Robin", stdout=out)
    printed = out.getvalue()
    assert "Created the agent 'robin'" in printed
    password = printed.split("Password: ")[1].split()[0]
    user = User.objects.get(username="robin")
    assert user.check_password(password)
    assert is_agent(user) and not is_admin(user) and user.first_name == "Robin"


def test_create_agent_reads_an_admin_s_password_from_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    out = io.StringIO()
    call_command("create_agent", "kim", "--admin", "--password-stdin", stdout=out)
    assert "Password" not in out.getvalue()
    user = User.objects.get(username="kim")
    assert user.check_password("a long passphrase") and is_admin(user)


@pytest.mark.parametrize(
    ("arguments", "stdin", "error"),
    [
        (["agent"], "", "exists already"),
        (["  "], "", "username is empty"),
        (["newcomer", "--password-stdin"], "\n", "password read from standard input is empty"),
    ],
)
def test_create_agent_refuses_what_it_cannot_do(
    agent: User, monkeypatch: pytest.MonkeyPatch, arguments: list[str], stdin: str, error: str
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(CommandError, match=error):
        call_command("create_agent", *arguments, stdout=io.StringIO())
    assert not User.objects.filter(username="newcomer").exists()


def test_the_run_command_s_admin_is_in_the_admins_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_ADMIN_PASSWORD", "admin-pw")
    call_command("ensure_admin", "--username", "boss", stdout=io.StringIO())
    boss = User.objects.get(username="boss")
    assert boss.groups.filter(name=ADMINS_GROUP).exists() and is_admin(boss)


def test_upgrading_keeps_every_staff_account_an_agent_and_every_superuser_an_admin() -> None:
    Group.objects.filter(name__in=(AGENTS_GROUP, ADMINS_GROUP)).delete()
    staff = User.objects.create_user("old-staff", is_staff=True)
    root = User.objects.create_superuser("old-root")
    departed = User.objects.create_user("departed", is_staff=True, is_active=False)
    migration = importlib.import_module("support.review.migrations.0001_roles")
    migration.create_roles(apps, None)
    assert is_agent(fresh(staff)) and not is_admin(fresh(staff))
    assert is_admin(fresh(root))
    assert not fresh(departed).groups.exists()

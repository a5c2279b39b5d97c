"""Access, as a matrix: every URL the server has, for every kind of person, gets exactly what it should.
The URL patterns are enumerated, so a new page without a rule here fails the first test. (The two
sockets are covered over the real socket in tests/integration: other visitors' tokens, origins, the
staff socket's refusal of customers.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from support.conversations import actions
from support.knowledge.models import Article
from support.review.models import CannedReply
from support.review.roles import make_agent
from tests.conftest import post_as_server

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "visitor", "agent", "group admin", "admin")
# What each persona gets: "open" (the page, a redirect elsewhere, or 405 for a POST-only action: it is
# reachable), "login" (sent to a login page), "denied" (401 or 403), "missing" (404). An agent is in
# the Agents group; a "group admin" in the Admins group (staff, no model permissions); an admin is the
# run command's superuser.
OPEN, LOGIN, DENIED, MISSING = "open", "login", "denied", "missing"
EVERYONE = {persona: OPEN for persona in PERSONAS}
AGENTS_ONLY = {"anonymous": LOGIN, "visitor": LOGIN, "agent": OPEN, "group admin": OPEN, "admin": OPEN}
ADMINS_ONLY = {"anonymous": LOGIN, "visitor": LOGIN, "agent": LOGIN, "group admin": OPEN, "admin": OPEN}
SIGNED_IN = {"anonymous": LOGIN, "visitor": OPEN, "agent": OPEN, "group admin": OPEN, "admin": OPEN}
# Django's admin site: admins may open it (it is for staff accounts), but only the superuser holds
# model permissions.
ADMIN_INDEX = ADMINS_ONLY
ADMIN_MODELS = {"anonymous": LOGIN, "visitor": LOGIN, "agent": LOGIN, "group admin": DENIED, "admin": OPEN}


def admin_site(group_admin: str, admin: str) -> dict[str, str]:
    return {"anonymous": LOGIN, "visitor": LOGIN, "agent": LOGIN, "group admin": group_admin, "admin": admin}


AXES_MODELS = ("accessattempt", "accesslog", "accessfailurelog")
# Tandem's own models in the admin site, kept by admins (the Admins group, not model permissions).
TANDEM_MODELS = ("review_cannedreply", "knowledge_article")
TANDEM_MODEL_PAGES = {**ADMIN_MODELS, "group admin": OPEN}

RULES: dict[str, dict[str, str]] = {
    "demo": EVERYONE,
    "health": EVERYONE,
    "review-queue": AGENTS_ONLY,
    "review-detail": AGENTS_ONLY,
    "review-reply": AGENTS_ONLY,
    "review-take-over": AGENTS_ONLY,
    "review-hand-back": AGENTS_ONLY,
    "review-close": AGENTS_ONLY,
    "review-note": AGENTS_ONLY,
    # The small model's page: retraining, promoting and rolling back are an admin's.
    "small-model": ADMINS_ONLY,
    "small-model-train": ADMINS_ONLY,
    "small-model-promote": ADMINS_ONLY,
    "small-model-discard": ADMINS_ONLY,
    "small-model-roll-back": ADMINS_ONLY,
    "small-model-new-article": ADMINS_ONLY,
    "review-snippets": AGENTS_ONLY,
    "review-checks": AGENTS_ONLY,
    "review-check": AGENTS_ONLY,
    "review-label": AGENTS_ONLY,
    "review-draft-approve": AGENTS_ONLY,
    "review-draft-send-edited": AGENTS_ONLY,
    "review-draft-reject": AGENTS_ONLY,
    # Assigning a conversation to an agent is an admin's.
    "review-assign": ADMINS_ONLY,
    # An API answers with status codes, not a login form.
    "stats-api": {"anonymous": DENIED, "visitor": DENIED, "agent": OPEN, "group admin": OPEN, "admin": OPEN},
    # Prometheus metrics: staff, or a scraper with TANDEM_METRICS_TOKEN (tests/support/test_metrics.py).
    "metrics": {"anonymous": DENIED, "visitor": DENIED, "agent": OPEN, "group admin": OPEN, "admin": OPEN},
    "console": AGENTS_ONLY,
    "console-intents": AGENTS_ONLY,
    "console-conversations": AGENTS_ONLY,
    "console-export": AGENTS_ONLY,
    # The router's operating point: an admin's (agents are sent to log in as one).
    "operating-point": ADMINS_ONLY,
    "operating-point-choose": ADMINS_ONLY,
    "operating-point-revert": ADMINS_ONLY,
    "login": EVERYONE,
    "logout": EVERYONE,
    "password_change": SIGNED_IN,
    "password_change_done": SIGNED_IN,
    "password_reset": EVERYONE,
    "password_reset_done": EVERYONE,
    "password_reset_confirm": EVERYONE,
    "password_reset_complete": EVERYONE,
    "admin:index": ADMIN_INDEX,
    "admin:login": EVERYONE,
    "admin:logout": EVERYONE,
    "admin:password_change": ADMIN_INDEX,
    "admin:password_change_done": ADMIN_INDEX,
    "admin:autocomplete": admin_site(DENIED, DENIED),
    "admin:jsi18n": ADMIN_INDEX,
    "admin:view_on_site": admin_site(MISSING, MISSING),
    "admin:app_list": admin_site(MISSING, OPEN),
    "admin:auth_group_changelist": ADMIN_MODELS,
    "admin:auth_group_add": ADMIN_MODELS,
    "admin:auth_group_history": ADMIN_MODELS,
    "admin:auth_group_delete": ADMIN_MODELS,
    "admin:auth_group_change": ADMIN_MODELS,
    # The bare object address redirects staff to its change page, which checks the permission.
    "admin/auth/group/<path:object_id>/": ADMIN_INDEX,
    "admin:auth_user_password_change": ADMIN_MODELS,
    "admin:auth_user_changelist": ADMIN_MODELS,
    "admin:auth_user_add": ADMIN_MODELS,
    "admin:auth_user_history": ADMIN_MODELS,
    "admin:auth_user_delete": ADMIN_MODELS,
    "admin:auth_user_change": ADMIN_MODELS,
    "admin/auth/user/<path:object_id>/": ADMIN_INDEX,
    # django-axes's records of logins: readable by admins, added by nobody by hand.
    **{
        f"admin:axes_{model}_{view}": ADMIN_MODELS
        for model in AXES_MODELS
        for view in ("changelist", "history", "delete", "change")
    },
    **{f"admin:axes_{model}_add": {**ADMIN_MODELS, "admin": DENIED} for model in AXES_MODELS},
    **{f"admin/axes/{model}/<path:object_id>/": ADMIN_INDEX for model in AXES_MODELS},
    **{
        f"admin:{model}_{view}": TANDEM_MODEL_PAGES
        for model in TANDEM_MODELS
        for view in ("changelist", "add", "history", "delete", "change")
    },
    **{f"admin/{model.replace('_', '/', 1)}/<path:object_id>/": ADMIN_INDEX for model in TANDEM_MODELS},
    "admin/(?P<url>.*)$": admin_site(MISSING, MISSING),
}


def routes(patterns: list[Any] | None = None, namespace: str = "", prefix: str = "") -> Iterator[tuple[str, str]]:
    """(rule key, full route) for every URL pattern; the key is its (namespaced) name, or its full route
    where it has no name."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(
                pattern.url_patterns, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace, route
            )
        elif isinstance(pattern, URLPattern):
            yield (f"{namespace}{pattern.name}" if pattern.name else route), route


def test_every_url_the_server_has_has_an_access_rule() -> None:
    keys = [key for key, _ in routes()]
    assert sorted(set(keys) - set(RULES)) == [], "a URL without an access rule: add it to RULES"
    assert sorted(set(RULES) - set(keys)) == [], "a rule for a URL that no longer exists"


@pytest.fixture
def world(knowledge_base: None, small_model_dir: object, frames: list[dict[str, Any]]) -> dict[str, Any]:
    visitor = User.objects.create_user("visitor-account", password="pw")
    agent = make_agent(User.objects.create_user("agent-account", password="pw"))
    admin = User.objects.create_superuser("admin-account", password="pw")
    group_admin = make_agent(User.objects.create_user("group-admin-account", password="pw"), admin=True)
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "c1", "I'd like to talk to a person please")
    seen = {"user_agent": "test", "ip_address": "198.51.100.1", "username": "x", "http_accept": "*/*", "path_info": "/"}
    objects = {
        "group": Group.objects.create(name="Support").pk,
        "accessattempt": AccessAttempt.objects.create(**seen, get_data="", post_data="", failures_since_start=1).pk,
        "accesslog": AccessLog.objects.create(**seen).pk,
        "accessfailurelog": AccessFailureLog.objects.create(**seen).pk,
        "review_cannedreply": CannedReply.objects.create(title="Thanks", text="Thank you!").pk,
        "knowledge_article": Article.objects.get(slug="reset-password").pk,
    }
    return {
        "users": {"visitor": visitor, "agent": agent, "admin": admin, "group admin": group_admin},
        "conversation": session.conversation_id,
        "objects": objects,
    }


def url_for(key: str, route: str, world: dict[str, Any]) -> str:
    admin_id = world["users"]["admin"].pk
    samples: dict[str, Any] = {
        "conversation_id": world["conversation"],
        "uidb64": "MQ",
        "token": "not-a-token",
        "object_id": admin_id,
        "id": admin_id,
        "content_type_id": ContentType.objects.get_for_model(User).pk,
        "app_label": "auth",
        "url": "no-such-page/",
        "table": "summary",
    }
    names = re.findall(r"<(?:\w+:)?(\w+)>", route) + re.findall(r"\(\?P<(\w+)>", route)
    kwargs = {name: samples[name] for name in names}
    # An admin page about one object gets an object of its own model.
    for model, pk in world["objects"].items():
        if model in key and "object_id" in kwargs:
            kwargs["object_id"] = pk
    if "/" in key:
        # An unnamed pattern: its route, filled in.
        path = route
        for name, value in kwargs.items():
            path = re.sub(rf"<(?:\w+:)?{name}>|\(\?P<{name}>[^)]*\)", str(value), path)
        return "/" + path.replace("^", "").replace("$", "")
    return reverse(key, kwargs=kwargs or None)


def outcome(response: Any) -> str:
    assert response.status_code < 500 or response.status_code == 503, response.status_code
    if response.status_code in (301, 302) and "login" in response["Location"]:
        return LOGIN
    if response.status_code in (401, 403):
        return DENIED
    if response.status_code == 404:
        return MISSING
    return OPEN


@pytest.mark.parametrize("key", sorted(RULES))
def test_each_person_gets_what_the_rule_says(key: str, world: dict[str, Any]) -> None:
    route = next(route for name, route in routes() if name == key)
    url = url_for(key, route, world)
    got = {}
    for persona in PERSONAS:
        client = Client()
        if persona != "anonymous":
            client.force_login(world["users"][persona])
        got[persona] = outcome(client.get(url))
    assert got == RULES[key], url

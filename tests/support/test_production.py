"""The documented production environment passes Django's deployment checks, and pages carry a
Content-Security-Policy whose nonce their inline blocks use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
# README, "Running in production".
PRODUCTION = {
    "DEBUG": "false",
    "TANDEM_HTTPS": "true",
    "TANDEM_BEHIND_PROXY": "true",
    "TANDEM_HSTS_INCLUDE_SUBDOMAINS": "true",
    "TANDEM_HSTS_PRELOAD": "true",
    "ALLOWED_HOSTS": "support.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://support.example.com",
}


def check_deploy(extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "support.settings", "TANDEM_DATA_DIR": str(tmp_path), **extra}
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_documented_production_environment_passes_the_deployment_checks(tmp_path: Path) -> None:
    result = check_deploy(PRODUCTION, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_it_the_deployment_checks_complain(tmp_path: Path) -> None:
    result = check_deploy({"DEBUG": "false"}, tmp_path)
    assert result.returncode != 0 and "SECURE_SSL_REDIRECT" in result.stderr + result.stdout


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/review/",
        "/review/checks/",
        "/console/",
        "/console/intents/",
        "/console/conversations/",
        "/accounts/login/",
    ],
)
def test_pages_send_a_content_security_policy_whose_nonce_their_inline_blocks_carry(url: str, agent: User) -> None:
    client = Client()
    client.force_login(agent)
    response = client.get(url)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    html = response.content.decode()
    inline = re.findall(r"<(?:script|style)\b([^>]*)>", html)
    assert inline and all(f'nonce="{nonce.group(1)}"' in attributes for attributes in inline)


def test_a_draft_for_reasons_that_must_not_call_the_large_model_stops_start_up(tmp_path: Path) -> None:
    result = check_deploy({"TANDEM_PEOPLE_DRAFTS": "sensitive,escalation_limit"}, tmp_path)
    assert result.returncode != 0 and "escalation_limit cannot have a large-model draft" in result.stderr

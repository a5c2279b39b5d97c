"""The run command's choice of ASGI server, and how it shows the admin's password."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import tandem  # noqa: E402


def test_uvicorn_is_the_default_with_its_fast_loop_and_no_compression() -> None:
    command = tandem.asgi_server({}, ["--fd", "7"], ["--fd", "7"], Path("/venv/bin"))
    assert command[0] == "/venv/bin/uvicorn" and command[-1] == "support.asgi:application"
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert options["--fd"] == "7" and options["--loop"] == "uvloop" and options["--http"] == "httptools"
    assert options["--ws-per-message-deflate"] == "false"


def test_daphne_on_request() -> None:
    command = tandem.asgi_server({"TANDEM_ASGI_SERVER": "daphne"}, ["--port", "80"], ["-p", "80"], Path("/v"))
    assert command == ["/v/daphne", "-p", "80", "support.asgi:application"]


def test_an_unknown_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        tandem.asgi_server({"TANDEM_ASGI_SERVER": "gunicorn"}, [], [])
    assert "TANDEM_ASGI_SERVER must be uvicorn or daphne, got 'gunicorn'" in capsys.readouterr().err


def test_a_generated_admin_password_is_shown_once_when_the_account_is_created_and_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tandem, "DATA_DIR", tmp_path)
    password = tandem.admin_password({})
    assert len(password) >= 16 and tandem.admin_password({}) != password
    assert list(tmp_path.iterdir()) == []
    assert password in tandem.admin_login({}, password, created=True)
    later = tandem.admin_login({}, password, created=False)
    assert password not in later and "changepassword" in later


def test_a_password_from_the_environment_is_never_printed() -> None:
    env = {"TANDEM_ADMIN_PASSWORD": "s3cret-from-env"}
    assert tandem.admin_password(env) == "s3cret-from-env"
    assert "s3cret" not in tandem.admin_login(env, "s3cret-from-env", created=True)

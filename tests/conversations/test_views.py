"""The health check the run command and load balancers poll."""

from __future__ import annotations

import os

import pytest
from django.test import Client

from chatbot.small import model as small_model


@pytest.mark.django_db
def test_health_is_503_until_the_small_model_is_warm_and_names_its_process(
    client: Client, small_model_dir: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(small_model, "warmed_up", False)
    assert client.get("/health/").status_code == 503
    monkeypatch.setattr(small_model, "warmed_up", True)
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "small_model": small_model.current_version(),
        "pid": os.getpid(),
    }

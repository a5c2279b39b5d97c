"""The operating point page: an admin sees the curve and what serves, chooses, and reverts; agents are
refused."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

from chatbot.policy import Thresholds, operating_point
from chatbot.small.model import get_small_model
from support.tuning.models import How, OperatingPointChange


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def table_thresholds(html: str) -> list[str]:
    return re.findall(r'<tr data-threshold="([^"]+)"', html)


@override_settings(TANDEM_OPERATING_POINT_MIN_LABELS=0)
def test_the_audit_log_records_who_from_and_to_and_revert_restores(
    known_labels: list[tuple[str, str]], admin_user: User
) -> None:
    model = get_small_model()
    assert model.policy is not None
    trained = model.policy.confidence_threshold
    admin = logged_in(admin_user)
    page = admin.get(reverse("operating-point"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="curve-chart"' in html and "chart.umd.min.js" in html
    points = table_thresholds(html)
    assert str(round(trained, 6)) in points
    picked = points[len(points) // 3]
    if float(picked) == trained:
        picked = points[len(points) // 3 + 1]

    response = admin.post(
        reverse("operating-point-choose"),
        {"version": model.version, "how": "point", "threshold": picked, "note": "fewer escalations"},
    )
    assert response.status_code == 302
    change = OperatingPointChange.objects.get()
    assert (change.changed_by, change.version, change.how) == (admin_user, model.version, How.POINT)
    assert (change.from_confidence, change.from_override) == (trained, False)
    assert (change.to_confidence, change.to_override) == (float(picked), True)
    assert "fewer escalations" in change.reason and "answers" in change.reason
    assert Thresholds.current().confidence == float(picked)
    html = admin.get(reverse("operating-point")).content.decode()
    assert f'id="serving-threshold">{float(picked):.4f}' in html
    assert 'class="serving" aria-current="true"' in html

    # A target accuracy: a second change, from the point picked.
    admin.post(reverse("operating-point-choose"), {"version": model.version, "how": "accuracy", "target": "50"})
    second = OperatingPointChange.objects.first()
    assert second is not None and second.how == How.ACCURACY and second.target == 0.5
    assert (second.from_confidence, second.from_override) == (float(picked), True)

    # Reverting the first change: the trained threshold serves again, and that is recorded too.
    admin.post(reverse("operating-point-revert", args=[change.pk]))
    back = OperatingPointChange.objects.first()
    assert back is not None and back.how == How.REVERT and back.reverts == change
    assert (back.to_confidence, back.to_override) == (trained, False)
    assert operating_point() is None
    assert Thresholds.current().confidence == trained


def test_only_admins_choose_agents_are_refused(model_dir: Path, agent: User, admin_user: User) -> None:
    model = get_small_model()
    client = logged_in(agent)
    for response in (
        client.get(reverse("operating-point")),
        client.post(reverse("operating-point-choose"), {"version": model.version, "how": "accuracy", "target": "90"}),
    ):
        assert response.status_code == 302 and "login" in response["Location"]
    assert not OperatingPointChange.objects.exists()
    assert operating_point() is None


@override_settings(TANDEM_CONFIDENCE_THRESHOLD=0.3)
def test_the_page_says_when_the_environment_fixes_the_threshold_and_disables_picking(
    model_dir: Path, admin_user: User
) -> None:
    admin = logged_in(admin_user)
    html = admin.get(reverse("operating-point")).content.decode()
    assert 'id="fixed-by-settings"' in html and "TANDEM_CONFIDENCE_THRESHOLD" in html
    assert "<fieldset disabled>" in html
    model = get_small_model()
    admin.post(reverse("operating-point-choose"), {"version": model.version, "how": "accuracy", "target": "90"})
    assert not OperatingPointChange.objects.exists()

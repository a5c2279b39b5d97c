"""An operating point chosen for the serving model reaches every server process within seconds, for that
model version only, and settings in the environment still win."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from django.contrib.auth.models import User
from django.test import override_settings

from chatbot.policy import OPERATING_POINT_FILE, OperatingPoint, Thresholds, write_operating_point
from chatbot.routing import Incoming, route_many
from chatbot.small import versions
from chatbot.small.model import get_small_model
from support.tuning import actions
from support.tuning.models import How

ROOT = Path(__file__).resolve().parents[2]
# A server process of its own: it reads the thresholds for the serving model's policy, as route_many
# does, every 50 ms.
READER = """
import json, sys, time
import django
django.setup()
from chatbot.policy import Thresholds
from chatbot.small.model import Policy, current_meta
meta = current_meta()
policy = Policy(**meta["policy"])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    print(Thresholds.current(policy, version=meta["version"]).confidence, flush=True)
    time.sleep(0.05)
"""


def test_an_override_changes_the_thresholds_in_another_process_within_seconds(
    model_dir: Path, admin_user: User
) -> None:
    version = get_small_model().version
    trained = get_small_model().policy
    assert trained is not None
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "TANDEM_SMALL_MODEL_DIR": str(model_dir)}
    env.pop("TANDEM_CONFIDENCE_THRESHOLD", None)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert reader.stdout is not None
        assert float(reader.stdout.readline()) == trained.confidence_threshold
        chosen = round(min(trained.confidence_threshold + 0.1, 0.99), 6)
        actions.choose(admin_user, version, chosen, How.POINT, "test")
        changed = time.monotonic()
        while float(reader.stdout.readline()) != chosen:
            assert time.monotonic() - changed < 3, "the other process did not see the new threshold"
        # Reverted: the trained threshold serves again there too.
        actions.revert(admin_user, actions.OperatingPointChange.objects.get().pk)
        changed = time.monotonic()
        while float(reader.stdout.readline()) != trained.confidence_threshold:
            assert time.monotonic() - changed < 3, "the other process kept the reverted threshold"
    finally:
        reader.kill()
        reader.wait()


def test_the_live_router_answers_by_the_chosen_threshold(model_dir: Path, admin_user: User) -> None:
    model = get_small_model()
    assert model.policy is not None
    text = "has my parcel shipped yet"
    [before] = route_many(model, [Incoming(text)])
    assert before.route.answer and before.prediction is not None
    assert Thresholds.current(model.policy).source == "trained"
    # Just above this message's confidence: the same message is escalated now, as low confidence.
    chosen = round(before.prediction.confidence + 0.0005, 6)
    assert chosen < 1.0
    actions.choose(admin_user, model.version, chosen, How.POINT, "test")
    assert Thresholds.current(model.policy).source == "operating point"
    [after] = route_many(model, [Incoming(text)])
    assert not after.route.answer and after.route.reason is not None and after.route.reason.value == "low_confidence"


def test_settings_in_the_environment_win(model_dir: Path, admin_user: User) -> None:
    model = get_small_model()
    write_operating_point(OperatingPoint(model.version, 0.77))
    assert Thresholds.current().confidence == 0.77
    with override_settings(TANDEM_CONFIDENCE_THRESHOLD=0.33):
        limits = Thresholds.current()
        assert (limits.confidence, limits.source) == (0.33, "settings")
        try:
            actions.choose(admin_user, model.version, 0.5, How.POINT, "test")
        except actions.ConversationError as error:
            assert error.code == "fixed_by_settings"
        else:
            raise AssertionError("a point was chosen while the environment fixes the threshold")


def test_an_override_for_another_model_version_is_ignored(model_dir: Path, admin_user: User) -> None:
    model = get_small_model()
    assert model.policy is not None
    actions.choose(admin_user, model.version, 0.9, How.POINT, "test")
    assert Thresholds.current().confidence == 0.9
    # Another model is promoted (the same files under a new version name).
    newer = model_dir / "29990101T000000000000Z"
    newer.mkdir()
    for entry in model.folder.iterdir():
        if entry.name != "meta.json":
            (newer / entry.name).symlink_to(entry.resolve())
    meta = {**model.meta, "version": newer.name}
    meta["policy"] = {**meta["policy"], "confidence_threshold": 0.42}
    (newer / "meta.json").write_text(json.dumps(meta))
    try:
        versions.make_current(newer.name)
        time.sleep(2.1)  # get_small_model looks at the pointer every two seconds
        serving = get_small_model()
        assert serving.version == newer.name
        limits = Thresholds.current()
        assert (limits.confidence, limits.source) == (0.42, "trained")
        # The old model's policy, asked for by version, still has its point.
        assert Thresholds.current(model.policy, version=model.version).confidence == 0.9
        # And nothing can be chosen for a model that no longer serves.
        try:
            actions.choose(admin_user, model.version, 0.5, How.POINT, "test")
        except actions.ConversationError as error:
            assert error.code == "model_changed"
        else:
            raise AssertionError("a point was chosen for a model that no longer serves")
    finally:
        versions.make_current(model.version)
        for entry in newer.iterdir():
            entry.unlink()
        newer.rmdir()
        time.sleep(2.1)


def test_a_damaged_operating_point_file_leaves_the_trained_thresholds(model_dir: Path) -> None:
    model = get_small_model()
    assert model.policy is not None
    (model_dir / OPERATING_POINT_FILE).write_text("{not json")
    assert Thresholds.current().confidence == model.policy.confidence_threshold


def test_the_console_says_an_admin_chose_the_threshold_serving(model_dir: Path, admin_user: User) -> None:
    from django.test import Client

    model = get_small_model()
    client = Client()
    client.force_login(admin_user)
    assert "operating point</a> page" not in client.get("/console/").content.decode()
    actions.choose(admin_user, model.version, 0.9, How.POINT, "test")
    html = client.get("/console/").content.decode()
    chosen_by = html.split('id="thresholds-chosen-by">')[1].split("</dd>")[0]
    assert "an admin, on the" in chosen_by and "0.900" in html

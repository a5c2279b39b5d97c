"""The train_small_model command: from the knowledge base (or a CSV), only when the data changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chatbot.small import model as small_model


@pytest.mark.django_db
def test_the_train_command_skips_unchanged_data(knowledge_base: None, trained_model_dir: Path, settings, tmp_path):
    shutil.copytree(trained_model_dir, tmp_path, dirs_exist_ok=True)
    settings.TANDEM_SMALL_MODEL_DIR = tmp_path
    version = small_model.current_version(tmp_path)
    call_command("train_small_model", "--if-needed")
    assert small_model.current_version(tmp_path) == version


@pytest.mark.django_db
def test_the_train_command_reads_a_csv_and_rejects_a_bad_one(tmp_path: Path, settings, small_model_dir) -> None:
    settings.TANDEM_SMALL_MODEL_DIR = tmp_path / "models"
    good = tmp_path / "good.csv"
    good.write_text("text,label\nhello,greet\nhi there,greet\nbye,leave\nsee you,leave\nhey,greet\nciao,leave\n")
    call_command("train_small_model", "--csv", str(good))
    meta = small_model.current_meta(tmp_path / "models")
    # The two intents of the file, and the built-in ones every model knows (small talk, talk-to-human).
    assert meta is not None and meta["intents"] == 2 + meta["built_in_intents"] and meta["built_in_intents"] > 5
    assert meta["examples"] == 6 + meta["built_in_examples"]
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,intent\nhello,greet\n")
    with pytest.raises(CommandError, match="text,label"):
        call_command("train_small_model", "--csv", str(bad))
    assert json.loads((tmp_path / "models" / meta["version"] / "meta.json").read_text())["version"] == meta["version"]

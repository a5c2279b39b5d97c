"""Retraining without fine-tuning: a new head and thresholds on an existing artefact's encoder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from chatbot.small import classifier
from chatbot.small import model as small_model
from chatbot.small.encoder import get_encoder
from tests.conftest import demo_examples

# A topic the demo knowledge base has no article for, as agents would label it from escalations.
GIFT_WRAP = [
    ("Can you gift wrap my order?", "gift-wrapping"),
    ("do you offer gift wrapping", "gift-wrapping"),
    ("I'd like this wrapped as a present", "gift-wrapping"),
    ("is gift wrap available for the sofa cushions", "gift-wrapping"),
    ("can the parcel come wrapped in gift paper", "gift-wrapping"),
    ("please wrap it as a birthday present", "gift-wrapping"),
    ("how much does gift wrapping cost", "gift-wrapping"),
    ("Can I add a gift wrap and a card?", "gift-wrapping"),
]


def _current(directory: Path) -> Path:
    version = small_model.current_version(directory)
    assert version is not None
    return directory / version


def test_refitting_the_head_keeps_the_encoder_and_learns_new_labels(trained_model_dir: Path, tmp_path: Path) -> None:
    base = _current(trained_model_dir)
    base_meta = json.loads((base / "meta.json").read_text())

    folder = small_model.refit_head(demo_examples() + GIFT_WRAP, base, tmp_path)

    assert small_model.current_version(tmp_path) == folder.name
    # The same fine-tuned encoder, shared rather than trained again.
    for name in ("model.safetensors", "config.json"):
        assert (folder / "encoder" / name).read_bytes() == (base / "encoder" / name).read_bytes()
    assert (
        os.stat(folder / "encoder" / "model.safetensors").st_ino
        == os.stat(base / "encoder" / "model.safetensors").st_ino
    )
    meta = json.loads((folder / "meta.json").read_text())
    # The artefact is written as `train` writes one, so promoting and serving it work as today.
    assert set(base_meta) <= set(meta) and meta["refit_from"] == base_meta["version"]
    assert meta["intents"] == base_meta["intents"] + 1 and meta["encoder"].endswith("(fine-tuned)")
    assert meta["fine_tune"]["encoder_from"] == base_meta["version"] and meta["fine_tune"]["head_refitted"]
    # The thresholds are chosen on the rows the encoder never saw: the base's calibration rows and the new ones.
    assert meta["fine_tune"]["calibration_rows"] == base_meta["fine_tune"]["calibration_rows"] + len(GIFT_WRAP)
    assert "not fine-tuned on" in meta["policy"]["chosen_by"]
    model = small_model.SmallModel(folder)
    assert model.encoder.path == folder / "encoder"
    assert model.predict("could you wrap my order as a gift?").intent == "gift-wrapping"
    assert model.predict("How do I reset my password?").intent == "reset-password"


def test_a_model_whose_encoder_does_not_record_its_examples_is_not_refitted(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old" / _current(trained_model_dir).name
    shutil.copytree(_current(trained_model_dir), old, copy_function=os.link)
    (old / "encoder" / small_model.TUNED_ON_FILE).unlink()

    with pytest.raises(ValueError, match="train the model again"):
        small_model.refit_head(demo_examples(), old, tmp_path / "new")
    assert not any((tmp_path / "new").iterdir()), "no half-written artefact is left behind"


def test_refitting_a_model_on_the_frozen_encoder_fits_a_new_head_on_it(
    tmp_path: Path, small_model_dir: Path, settings
) -> None:
    settings.TANDEM_SMALL_TALK_DISABLED = ["all", "talk-to-human"]
    greetings = [("hello there", "greet"), ("hi", "greet"), ("good morning", "greet"), ("hey you", "greet")]
    farewells = [("bye", "leave"), ("see you later", "leave"), ("goodbye", "leave"), ("farewell", "leave")]
    base = small_model.train(greetings + farewells, tmp_path, epochs=0)
    thanks = [("thank you", "thank"), ("thanks a lot", "thank"), ("many thanks", "thank"), ("cheers, thanks", "thank")]

    folder = small_model.refit_head(greetings + farewells + thanks, base, tmp_path)

    meta = json.loads((folder / "meta.json").read_text())
    assert not (folder / "encoder").exists() and meta["fine_tune"] is None and meta["intents"] == 3
    assert "held-out training examples" in meta["policy"]["chosen_by"] and meta["metrics"]["holdout_rows"] == 12
    assert small_model.SmallModel(folder).predict("thanks so much").intent == "thank"


def test_the_thresholds_can_be_chosen_on_a_given_sample_of_the_examples(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    # e.g. agents' spot checks of answers, a random sample of traffic, where escalations are the hard ones.
    base = _current(trained_model_dir)
    spot_checks = [text for text, _ in GIFT_WRAP[:5]]

    folder = small_model.refit_head(demo_examples() + GIFT_WRAP, base, tmp_path, calibration=spot_checks)

    meta = json.loads((folder / "meta.json").read_text())
    assert meta["fine_tune"]["calibration_rows"] == meta["metrics"]["holdout_rows"] == 5
    assert "calibration examples given" in meta["policy"]["chosen_by"]


def test_training_can_keep_given_examples_out_of_fine_tuning_to_calibrate_on(
    tmp_path: Path, small_model_dir: Path, settings
) -> None:
    settings.TANDEM_SMALL_TALK_DISABLED = ["all", "talk-to-human"]
    examples = [(text, label) for text, label in demo_examples() if label in {"reset-password", "track-order"}]
    kept_aside = [examples[0][0], examples[1][0], examples[-1][0]]

    folder = small_model.train(examples, tmp_path, epochs=1, calibration=kept_aside)

    meta = json.loads((folder / "meta.json").read_text())
    assert meta["fine_tune"]["calibration_rows"] == meta["metrics"]["holdout_rows"] == 3
    recorded = set(json.loads((folder / "encoder" / small_model.TUNED_ON_FILE).read_text())["texts"])
    assert len(recorded) == len({text for text, _ in examples}) - 3
    # A later refit scores exactly those three: the encoder never saw them.
    refitted = small_model.refit_head(examples, folder, tmp_path)
    assert json.loads((refitted / "meta.json").read_text())["metrics"]["holdout_rows"] == 3


def test_a_head_cannot_be_calibrated_when_the_encoder_saw_every_example(small_model_dir: Path, settings) -> None:
    settings.TANDEM_SMALL_TALK_DISABLED = ["all", "talk-to-human"]
    examples = [("hello there", "greet"), ("hi", "greet"), ("bye", "leave"), ("goodbye", "leave")]
    with pytest.raises(ValueError, match="every example"):
        small_model.fit_head(examples, get_encoder(), tuned_on=lambda texts, _: np.ones(len(texts), dtype=bool))


def test_held_out_scores_never_score_a_row_with_a_classifier_that_saw_it() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    labels = np.repeat(np.array(["a", "b", "c"]), 20)
    vectors = centres[np.repeat(np.arange(3), 20)] + 0.3 * rng.normal(size=(60, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    held = np.zeros(60, dtype=bool)
    held[::3] = True

    scores = classifier.held_out_scores(vectors, labels, held)

    assert len(scores.intents) == held.sum()
    # A classifier that had seen the row would find it among its own examples (similarity 1).
    assert scores.similarities.max() < 0.999
    assert (scores.intents == labels[held]).mean() > 0.9
    # Rows outside the mask are always learned from: a held row's nearest example may be one of them.
    nearest_unheld = (vectors[held] @ vectors[~held].T).max(axis=1)
    assert np.all(scores.similarities >= nearest_unheld - 1e-6)

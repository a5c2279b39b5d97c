"""What int8 quantisation costs a trained small model: the same fine-tuned weights served in float32
and in int8 (ONNX Runtime dynamic quantisation, one scale per channel), on the same test set.

    .venv/bin/python manage.py evaluate_router --train TRAIN.csv --test TEST.csv --save-model var/eval-model
    .venv/bin/python bench/router_precision.py --model var/eval-model --train TRAIN.csv --test TEST.csv

For each precision the training examples are embedded again (the nearest-example vote and the
out-of-scope score use them), the threshold is chosen again on the same calibration rows, and the test
rows are scored: top-1 accuracy, the coverage at which answered accuracy stays ≥ 99 % (best possible),
and what the calibrated threshold gives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from chatbot.small import classifier, evaluation  # noqa: E402
from chatbot.small import model as small_model  # noqa: E402
from chatbot.small.encoder import Encoder  # noqa: E402
from chatbot.smalltalk import with_small_talk  # noqa: E402


def best_coverage(confidences: np.ndarray, correct: np.ndarray, target: float = 0.99) -> float:
    order = np.argsort(-confidences, kind="stable")
    cumulative = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    meets = np.flatnonzero(cumulative >= target)
    return (meets.max() + 1) / len(order) if len(meets) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--model", type=Path, required=True, help="an artefact folder (or the folder holding `current`)"
    )
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    args = parser.parse_args()
    folder = args.model
    if (folder / "current").exists():
        folder = folder / (folder / "current").read_text().strip()
    head = classifier.Classifier.load(folder / "weights.npz")
    stored = json.loads((folder / "meta.json").read_text())
    if not (folder / "encoder").is_dir():
        sys.exit("this model was trained on the frozen encoder: nothing fine-tuned to compare")
    # The model was trained on these examples and the built-in small talk, in this order.
    train = with_small_talk(evaluation.read_labelled_csv(args.train))
    test = evaluation.read_labelled_csv(args.test)
    labels = np.array([label for _, label in train])
    held = small_model.calibration_split(labels, stored["fine_tune"]["calibration_share"])
    texts = [text for text, _ in train]
    fit_texts = [text for text, keep in zip(texts, held, strict=True) if not keep]
    calibration = [text for text, keep in zip(texts, held, strict=True) if keep]
    test_labels = np.array([label for _, label in test])
    print(f"model {folder.name}: {stored['encoder']}, {len(fit_texts)} examples, {len(calibration)} calibration rows")
    for quantize in (False, True):
        encoder = Encoder(
            folder / "encoder", threads=settings.TANDEM_TORCH_THREADS, quantize=quantize, cache_dir=folder
        )
        scored = replace(head, examples=encoder.embed(fit_texts))
        calibrated = scored.score(encoder.embed(calibration))
        threshold = classifier.threshold_for_accuracy(
            calibrated.confidences, calibrated.intents == labels[held], settings.TANDEM_TARGET_ANSWERED_ACCURACY
        )
        scores = scored.score(encoder.embed([text for text, _ in test]))
        correct = scores.intents == test_labels
        answered = scores.confidences >= threshold
        print(
            f"{'int8   ' if quantize else 'float32'}: top-1 {correct.mean():.2%}; best coverage at 99 % "
            f"{best_coverage(scores.confidences, correct):.2%}; calibrated threshold {threshold:.3f}: "
            f"coverage {answered.mean():.2%}, answered accuracy {correct[answered].mean():.2%}"
        )


if __name__ == "__main__":
    main()

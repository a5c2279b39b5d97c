"""Out-of-scope detection on BANKING77 by holding whole intents out, over several random splits.

    .venv/bin/python bench/oos_splits.py [--data ../shared/data/banking77] [--hold-out 17] [--seeds 0 1 2]

For each seed, trains on the remaining intents exactly as `train_small_model` does (fine-tuning the
encoder for --epochs, default TANDEM_SMALL_MODEL_EPOCHS: about 10 minutes a split on 2 cores) and runs
the live policy on the whole test set, whose held-out intents' rows are out of scope. Same code as
`evaluate_router --hold-out-intents` (and the same routing code as the live server).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
os.environ.setdefault("TANDEM_DATA_DIR", tempfile.mkdtemp(prefix="tandem-bench-"))
os.environ["HF_HUB_OFFLINE"] = "1"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from chatbot.small import evaluation  # noqa: E402
from chatbot.small.encoder import get_encoder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/banking77")
    parser.add_argument("--hold-out", type=int, default=17)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=settings.TANDEM_SMALL_MODEL_EPOCHS)
    args = parser.parse_args()
    train = evaluation.read_labelled_csv(args.data / "train.csv")
    test = evaluation.read_labelled_csv(args.data / "test.csv")
    encoder = get_encoder()
    keys = ("oos_recall", "coverage", "answered_accuracy", "threshold", "oos_similarity", "oos_recall_at_90_coverage")
    for seed in args.seeds:
        kept, relabelled, held = evaluation.hold_out_intents(train, test, args.hold_out, seed)
        report = evaluation.evaluate(kept, relabelled, encoder, args.epochs)
        print(f"seed {seed}, {args.hold_out} intents held out:", json.dumps({k: report[k] for k in keys}), flush=True)


if __name__ == "__main__":
    main()

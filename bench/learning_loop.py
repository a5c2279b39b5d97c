"""The learning loop, measured on BANKING77 (issue 11): how fast the small tier takes over as agents
label what it escalates.

    .venv/bin/python bench/learning_loop.py [--data ../shared/data/banking77] [--start-per-intent 10]
        [--round-size 1000] [--rounds N] [--seed 0] [--full-every 2] [--epochs 4]
        [--audit-share 0] [--threshold-confidence 0] [--plot bench/learning-loop.png] [--json FILE] [--smoke]
    .venv/bin/python bench/learning_loop.py --redraw NAME=FILE.json ... --plot bench/learning-loop.png

The knowledge base starts as `--start-per-intent` examples of each of the 77 intents, drawn at random
(`--seed`) from the training set; the rest of the training set, shuffled with the same seed, is replayed
as customer traffic in rounds of `--round-size` messages. Each message is routed by the model in use;
every one it escalates gets its true label, as if an agent had answered it, and joins the training
data. After each round the model is retrained and measured on the whole BANKING77 test set.

Retraining (what runs after every round):

- **a head refit** (`chatbot.small.model.refit_head`): the encoder of the model in use is kept; a new
  classifier (a logistic regression, as `--epochs 0` training fits) and nearest-example vote are
  fitted on every example so far, and the thresholds are chosen from 5-fold out-of-fold predictions
  on the examples that encoder was never fine-tuned on (the rows its training kept aside for
  calibration, and every label added since). Seconds to a minute.
- **a full retraining** (`chatbot.small.model.train`, what `train_small_model` runs: the encoder
  fine-tuned for `--epochs` on 90 % of the labels, thresholds chosen on the other 10 %) whenever the
  labels have grown `--full-every` times since the encoder was last fine-tuned (and for the start).
  The encoder is what learns most from new examples, and fine-tuning costs minutes, growing with the
  data: doubling the data between fine-tunes keeps their total cost within about twice the last one.

Either way the thresholds come from training-side data only; the test set is only measured.

`--audit-share S` (default 0: the loop above) has agents also label a random share S of each round's
traffic, answered or not (spot checks of the small tier's answers, beside the escalations), and
chooses the thresholds on those rows and the start's calibration rows only (`calibration=` of `train`
and `refit_head`), never on the escalations: agents' labels of escalated messages are the ones the
model was unsure of, and they never include its confident mistakes (nobody sees an answered message),
so as they pile up the calibration rows stop looking like traffic.

What is measured, after each round, on the 3,080 test questions, through `evaluation.evaluate_model`
(`chatbot.routing.route_many` and `chatbot.policy.decide`, the live server's routing code):
coverage (the share the small tier answers), answered accuracy (the share of those answered with the
right intent), top-1 accuracy and the threshold. On the round's own traffic, routed by the model in
place during the round: the share answered, the labels it produced, and its cost against sending every
message to the large model, priced as the product prices tiers: a small-tier answer at the encoder's
input tokens (counted as the router counts them) at `TANDEM_SMALL_MODEL_NAME`'s price, an escalation
to the large model (or to people with a draft, `TANDEM_PEOPLE_DRAFTS`) at the tokens the admin
console's baseline assumes when it has seen no large-model answer (`TANDEM_BASELINE_INPUT_TOKENS` /
`TANDEM_BASELINE_OUTPUT_TOKENS`, 600 / 120) at `TANDEM_LLM_MODEL_NAME`'s price (`chatbot.costs`,
`TANDEM_PRICES`); the baseline is every message at that large-model price. As in the product, the
encoder's tokens on an escalated message are not charged, and agents' time is not priced.

How this differs from the live path: each message is routed alone, in a conversation of its own (no
earlier language, no flood control, no escalation limits); every model also learns the built-in small
talk, as every trained model does, and the routing signals (language, segments, complaints, requests
for a person) all run, so their escalations are labelled too. Agents answer every escalation at once
and always label it rightly; a wrongly answered message is never labelled (nobody sees it).

`--smoke` runs a few small rounds on 12 intents with one epoch of fine-tuning, to check the script
(about a minute); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
os.environ.setdefault("TANDEM_DATA_DIR", tempfile.mkdtemp(prefix="tandem-bench-"))
os.environ["HF_HUB_OFFLINE"] = "1"

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from chatbot import costs  # noqa: E402
from chatbot.policy import Thresholds  # noqa: E402
from chatbot.routes import Destination  # noqa: E402
from chatbot.routing import Incoming, Routed, route_many  # noqa: E402
from chatbot.small import evaluation  # noqa: E402
from chatbot.small import model as small_model  # noqa: E402
from chatbot.small.encoder import get_encoder  # noqa: E402
from chatbot.smalltalk import with_small_talk  # noqa: E402

Example = tuple[str, str]
BATCH = 64


@dataclass
class Round:
    round: int
    traffic: int
    # The round's traffic, routed by the model in place during the round.
    answered_traffic: float | None
    right_traffic: float | None
    escalated: int
    # Answered messages agents also labelled as spot checks (--audit-share).
    audited: int
    # Agent labels so far, and all the examples the model was trained on (the start's included).
    labels: int
    examples: int
    retraining: str
    retrain_seconds: float
    # CPU seconds of this process (all its threads) while retraining: less sensitive to a busy machine.
    retrain_cpu_seconds: float
    # What training expected of the thresholds it chose, on its calibration rows.
    calibration_rows: int
    calibration_coverage: float | None
    calibration_answered_accuracy: float | None
    # The BANKING77 test set.
    coverage: float
    answered_accuracy: float | None
    accuracy: float
    threshold: float
    cost_usd: float
    all_large_usd: float


def split(train: list[Example], per_intent: int, seed: int) -> tuple[list[Example], list[Example]]:
    """`per_intent` random examples of each intent (the knowledge base), and the rest shuffled (the traffic)."""
    rng = np.random.default_rng(seed)
    labels = np.array([label for _, label in train])
    start = np.zeros(len(train), dtype=bool)
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        start[rng.permutation(members)[:per_intent]] = True
    rest = [train[index] for index in rng.permutation(np.flatnonzero(~start))]
    return [train[index] for index in np.flatnonzero(start)], rest


def route(model: small_model.SmallModel, texts: list[str]) -> list[Routed]:
    thresholds = Thresholds.current(model.policy)
    routed: list[Routed] = []
    for start in range(0, len(texts), BATCH):
        routed.extend(route_many(model, [Incoming(text) for text in texts[start : start + BATCH]], thresholds))
    return routed


def large_answer_usd() -> Decimal:
    """One message answered by the large model, as the console's baseline prices one it has not seen."""
    return costs.cost_usd(
        settings.TANDEM_LLM_MODEL_NAME, settings.TANDEM_BASELINE_INPUT_TOKENS, settings.TANDEM_BASELINE_OUTPUT_TOKENS
    )


def round_cost(routed: list[Routed]) -> Decimal:
    """What the product would record for these messages: small answers at the encoder's tokens, large
    answers (and people's drafts) at the large model's."""
    total = Decimal(0)
    drafts = set(settings.TANDEM_PEOPLE_DRAFTS)
    for result in routed:
        route_ = result.route
        if route_.answer:
            total += costs.cost_usd(settings.TANDEM_SMALL_MODEL_NAME, result.input_tokens, 0)
        elif route_.destination == Destination.LARGE or (route_.reason is not None and route_.reason.value in drafts):
            total += large_answer_usd()
    return total


def measure(model: small_model.SmallModel, test: list[Example]) -> dict[str, Any]:
    report = evaluation.evaluate_model(model, test)
    return {key: report[key] for key in ("coverage", "answered_accuracy", "accuracy", "threshold")}


def retrain(
    labelled: list[Example], base: Path | None, directory: Path, epochs: int, calibration: set[str] | None
) -> tuple[Path, float, float, str]:
    """A full training as `train_small_model` runs it (base None), or a head refit on `base`'s encoder."""
    started, cpu = time.monotonic(), time.process_time()
    if base is None:
        trained = small_model.train(labelled, directory, encoder=get_encoder(), epochs=epochs, calibration=calibration)
        kind = f"full ({epochs} epochs)" if epochs > 0 else "frozen encoder"
    else:
        trained = small_model.refit_head(labelled, base, directory, calibration=calibration)
        kind = "head"
    return trained, time.monotonic() - started, time.process_time() - cpu, kind


def calibration_of(model: small_model.SmallModel) -> dict[str, Any]:
    metrics = model.meta["metrics"]
    # The knowledge base's rows (here BANKING77's) the thresholds were chosen on: the built-in intents' aside.
    return {
        "calibration_rows": metrics["holdout_rows"],
        "calibration_coverage": metrics["holdout_coverage"],
        "calibration_answered_accuracy": metrics["holdout_answered_accuracy"],
    }


def table(rounds: list[Round]) -> str:
    header = (
        "| round | traffic: answered, right when answered | escalated (+ audited) | agent labels | examples "
        "| retraining | seconds (CPU) | calibration rows: coverage, answered accuracy "
        "| **test: coverage** | **answered accuracy** | top-1 | threshold | cost of the round (USD) | all large (USD) |"
    )
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.2%}"

    for row in rounds:
        traffic = f"{pct(row.answered_traffic)}, {pct(row.right_traffic)}" if row.traffic else ""
        labels = (f"{row.escalated}" + (f" + {row.audited}" if row.audited else "")) if row.traffic else ""
        lines.append(
            f"| {row.round} | {traffic} | {labels} | {row.labels} | {row.examples} | {row.retraining} "
            f"| {row.retrain_seconds:.0f} ({row.retrain_cpu_seconds:.0f}) "
            f"| {row.calibration_rows}: {pct(row.calibration_coverage)}, "
            f"{pct(row.calibration_answered_accuracy)} | {pct(row.coverage)} | {pct(row.answered_accuracy)} "
            f"| {pct(row.accuracy)} | {row.threshold:.3f} "
            + (f"| {row.cost_usd:.4f} | {row.all_large_usd:.4f} |" if row.traffic else "| | |")
        )
    return "\n".join(lines)


def plot(runs: list[tuple[str, list[Round]]], path: Path, title: str) -> None:
    """Coverage and answered accuracy on the test set against the agent labels so far, and each round's
    cost, for one run or several (`--redraw`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cover, right, cost) = plt.subplots(1, 3, figsize=(16, 4.8), dpi=110)
    width = 0.8 / (len(runs) + 1)
    for index, (name, rounds) in enumerate(runs):
        colour = f"C{index}"
        labels = [row.labels for row in rounds]
        full = [row for row in rounds if row.retraining.startswith("full")]
        for axes, values in (
            (cover, [row.coverage for row in rounds]),
            (right, [row.answered_accuracy for row in rounds]),
        ):
            # A round whose model answered nothing has no answered accuracy: a gap in the curve.
            axes.plot(
                labels, [np.nan if value is None else value for value in values], marker="o", markersize=4,
                color=colour, label=name,
            )  # fmt: skip
            axes.scatter(
                [row.labels for row in full if values[rounds.index(row)] is not None],
                [values[rounds.index(row)] for row in full if values[rounds.index(row)] is not None],
                s=110,
                facecolors="none",
                edgecolors=colour,
                zorder=3,
            )
            for row, value in zip(rounds, values, strict=True):
                if value is None:
                    continue
                axes.annotate(
                    str(row.round),
                    (row.labels, value),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=7,
                    color=colour,
                )
        served = [row for row in rounds if row.traffic]
        if index == 0:
            cost.bar(
                [row.round - 0.4 + width / 2 for row in served],
                [row.all_large_usd for row in served],
                width=width,
                color="lightgrey",
                label="everything to the large model",
            )
        cost.bar(
            [row.round - 0.4 + width * (index + 1.5) for row in served],
            [row.cost_usd for row in served],
            width=width,
            color=colour,
            label=name,
        )
    cover.axhline(0.70, color="grey", linestyle="--", linewidth=1)
    right.axhline(0.99, color="grey", linestyle="--", linewidth=1)
    cover.set_ylim(0, 1)
    right.set_ylim(0.97, 1.0)
    cover.set_title("Coverage on the test set (target 70 %)")
    right.set_title("Answered accuracy on the test set (target 99 %)")
    for axes in (cover, right):
        axes.set_xlabel("agent labels so far (by each point: the round; circled: after a full fine-tune)", fontsize=8)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="lower right")
    cost.set_title("Model cost of each round's traffic")
    cost.set_xlabel("round of traffic")
    cost.set_ylabel("USD (TANDEM_PRICES)")
    cost.grid(alpha=0.3, axis="y")
    cost.set_ylim(0, cost.get_ylim()[1] * (1.2 + 0.1 * len(runs)))
    cost.legend(fontsize=6, loc="upper right")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/banking77")
    parser.add_argument("--start-per-intent", type=int, default=10)
    parser.add_argument("--round-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, help="stop after this many rounds (default: until the traffic ends)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--full-every",
        type=float,
        default=2.0,
        help="fine-tune the encoder again when the labels have grown this many times since it last was "
        "(0: never, only head refits after the start)",
    )
    parser.add_argument("--epochs", type=int, default=settings.TANDEM_SMALL_MODEL_EPOCHS)
    parser.add_argument(
        "--audit-share",
        type=float,
        default=0.0,
        help="agents also label this random share of each round's traffic, answered or not, and the "
        "thresholds are chosen on those rows (and the start's calibration rows) only",
    )
    parser.add_argument(
        "--threshold-confidence",
        type=float,
        default=settings.TANDEM_THRESHOLD_CONFIDENCE,
        help="TANDEM_THRESHOLD_CONFIDENCE for every training: choose the thresholds where the answered "
        "calibration rows' accuracy has a lower confidence bound at this level >= the target (0: the point "
        "estimate)",
    )
    parser.add_argument("--plot", type=Path, default=Path(__file__).resolve().parent / "learning-loop.png")
    parser.add_argument("--json", type=Path, help="also write the rounds to this file")
    parser.add_argument("--smoke", action="store_true", help="a quick check of the script: 12 intents, small rounds")
    parser.add_argument(
        "--redraw",
        nargs="+",
        metavar="NAME=JSON",
        help="only draw --plot from runs saved earlier with --json, one curve each (e.g. plain=run.json)",
    )
    args = parser.parse_args()
    if args.redraw:
        runs = []
        for item in args.redraw:
            name, _, file = item.rpartition("=")
            saved = json.loads(Path(file).read_text())
            runs.append((name or file, [Round(**{"retrain_cpu_seconds": 0.0, **row}) for row in saved["rounds"]]))
        plot(runs, args.plot, f"BANKING77 learning loop (bench/learning_loop.py), {len(runs)} runs")
        print(f"curve: {args.plot}")
        return

    train = evaluation.read_labelled_csv(args.data / "train.csv")
    test = evaluation.read_labelled_csv(args.data / "test.csv")
    intents = json.loads((args.data / "categories.json").read_text())
    if args.smoke:
        kept = set(sorted(intents)[:12])
        train = [row for row in train if row[1] in kept]
        test = [row for row in test if row[1] in kept]
        args.start_per_intent, args.round_size, args.epochs = min(args.start_per_intent, 5), 150, 1
        args.rounds = args.rounds or 3
    settings.TANDEM_THRESHOLD_CONFIDENCE = args.threshold_confidence
    start, traffic = split(train, args.start_per_intent, args.seed)
    directory = Path(os.environ["TANDEM_DATA_DIR"]) / "learning-loop"
    settings.TANDEM_SMALL_MODEL_DIR = directory
    print(
        f"{len(start)} starting examples ({args.start_per_intent} of each of "
        f"{len({label for _, label in start})} intents), "
        f"{len(traffic)} messages of traffic in rounds of {args.round_size}, {len(test)} test questions; "
        f"{os.cpu_count()} cores, serving threads {settings.TANDEM_TORCH_THREADS}, fine-tuning threads "
        f"{settings.TANDEM_TRAIN_THREADS}; large model priced as {settings.TANDEM_LLM_MODEL_NAME} at "
        f"{large_answer_usd():.6f} USD a message",
        flush=True,
    )
    began = time.monotonic()
    labelled = list(start)
    calibration: set[str] | None = None
    if args.audit_share > 0:
        # The thresholds are chosen on random rows only: the start's rows the first training keeps aside
        # (the same split `train` makes) and the audited sample of traffic.
        examples = with_small_talk(start)
        held = small_model.calibration_split(
            np.array([label for _, label in examples]), settings.TANDEM_CALIBRATION_SHARE
        )
        calibration = {text for (text, _), keep in zip(examples, held, strict=True) if keep}
    audits = np.random.default_rng(args.seed + 1)
    folder, seconds, cpu, kind = retrain(labelled, None, directory, args.epochs, calibration)
    tuned_at = len(labelled)
    model = small_model.SmallModel(folder)
    rounds = [
        Round(
            0, 0, None, None, 0, 0, 0, len(labelled), kind, seconds, cpu,
            **calibration_of(model), **measure(model, test), cost_usd=0.0, all_large_usd=0.0,
        )
    ]  # fmt: skip
    print(table(rounds), flush=True)
    for number, begin in enumerate(range(0, len(traffic), args.round_size), start=1):
        if args.rounds is not None and number > args.rounds:
            break
        chunk = traffic[begin : begin + args.round_size]
        routed = route(model, [text for text, _ in chunk])
        answered = np.array([result.route.answer for result in routed])
        right = np.array(
            [
                [reply.intent for reply in result.route.replies] == [label]
                for result, (_, label) in zip(routed, chunk, strict=True)
            ]
        )
        audited = audits.random(len(chunk)) < args.audit_share
        # Agents answer every escalation; with --audit-share they also check a random sample of answers.
        labelled.extend(
            example for example, answer, spot in zip(chunk, answered, audited, strict=True) if not answer or spot
        )
        if calibration is not None:
            calibration |= {text for (text, _), spot in zip(chunk, audited, strict=True) if spot}
        full = args.full_every > 0 and args.epochs > 0 and len(labelled) >= args.full_every * tuned_at
        folder, seconds, cpu, kind = retrain(labelled, None if full else folder, directory, args.epochs, calibration)
        if full:
            tuned_at = len(labelled)
        model = small_model.SmallModel(folder)
        rounds.append(
            Round(
                number,
                len(chunk),
                float(answered.mean()),
                float(right[answered].mean()) if answered.any() else None,
                int((~answered).sum()),
                int((answered & audited).sum()),
                len(labelled) - len(start),
                len(labelled),
                kind,
                seconds,
                cpu,
                **calibration_of(model),
                **measure(model, test),
                cost_usd=float(round_cost(routed)),
                all_large_usd=float(large_answer_usd() * len(chunk)),
            )
        )
        print(table(rounds).splitlines()[-1], flush=True)
    wall = time.monotonic() - began
    title = (
        f"BANKING77 learning loop: {args.start_per_intent} examples per intent to start, rounds of "
        f"{args.round_size}, full fine-tune when the labels grow {args.full_every:g}x, seed {args.seed}"
        + (f", {args.audit_share:.0%} of traffic audited" if args.audit_share else "")
        + (f", thresholds at a {args.threshold_confidence:.0%} lower bound" if args.threshold_confidence else "")
    )
    print()
    print(table(rounds))
    total = sum(row.cost_usd for row in rounds)
    baseline = sum(row.all_large_usd for row in rounds)
    print(
        f"\nwall time {wall / 60:.1f} min; traffic cost {total:.4f} USD against {baseline:.4f} USD all large "
        f"({total / baseline:.1%})"
        if baseline
        else f"\nwall time {wall / 60:.1f} min"
    )
    name = f"audit {args.audit_share:.0%}" if args.audit_share else "escalations only"
    if args.threshold_confidence:
        name += f", {args.threshold_confidence:.0%} lower bound"
    plot([(name, rounds)], args.plot, title + (" (smoke run)" if args.smoke else ""))
    print(f"curve: {args.plot}")
    result = {
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "wall_seconds": round(wall, 1),
        "rounds": [asdict(row) for row in rounds],
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

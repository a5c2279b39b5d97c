"""Training, storing and loading the small model's classifier.

An artefact is a folder `<TANDEM_SMALL_MODEL_DIR>/<version>/` holding `weights.npz` (the linear
classifier and the normalised embeddings of its training examples) and `meta.json` (data fingerprint,
metrics, date). The file `current` names the version in use; servers notice a new one without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from chatbot.small import classifier
from chatbot.small.encoder import Encoder, get_encoder
from chatbot.smalltalk import builtin, with_small_talk

Progress = Callable[[str], None]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    intent: str
    confidence: float
    # Cosine similarity to the closest training example: low means nothing in the knowledge base
    # resembles the question.
    similarity: float
    input_tokens: int


def fingerprint(examples: list[tuple[str, str]]) -> str:
    """Identifies the data a model was trained on (the examples given to `train`, with small talk)."""
    digest = hashlib.sha256()
    for text, label in sorted(examples):
        digest.update(f"{label}\t{text}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Policy:
    """The router's thresholds, chosen at training time and stored with the artefact."""

    confidence_threshold: float
    oos_similarity: float
    chosen_by: str


def policy_from_scores(scores: classifier.Scores, labels: np.ndarray, source: str) -> tuple[Policy, dict[str, Any]]:
    """Pick the thresholds from predictions on rows the model did not learn from, and report how they did.

    Only the knowledge base's rows count: the thresholds decide when an article's answer is sent, and
    the built-in intents (easy to tell apart, with bars of their own in the policy) would otherwise
    make the model look surer than it is on the articles."""
    own = ~np.isin(labels, list(builtin()))
    if own.any():
        scores = classifier.Scores(scores.intents[own], scores.confidences[own], scores.similarities[own])
        labels = labels[own]
    correct = scores.intents == labels
    if settings.TANDEM_TARGET_ESCALATION_RATE is not None:
        rate = settings.TANDEM_TARGET_ESCALATION_RATE
        threshold = classifier.threshold_for_escalation_rate(scores.confidences, rate)
        chosen_by = f"escalation rate {rate:.0%} on {source}"
    else:
        target = settings.TANDEM_TARGET_ANSWERED_ACCURACY
        level = settings.TANDEM_THRESHOLD_CONFIDENCE
        threshold = classifier.threshold_for_accuracy(scores.confidences, correct, target, level)
        bound = f" ({level:.0%} lower bound)" if level > 0 else ""
        chosen_by = f"answered accuracy {target:.1%}{bound} on {source}"
    floor = classifier.similarity_floor(scores.similarities, settings.TANDEM_OOS_IN_SCOPE_LOSS)
    answered = (scores.confidences >= threshold) & (scores.similarities >= floor)
    metrics = {
        "holdout_rows": len(labels),
        "holdout_accuracy": round(float(correct.mean()), 4),
        "holdout_coverage": round(float(answered.mean()), 4),
        "holdout_answered_accuracy": round(float(correct[answered].mean()), 4) if answered.any() else None,
    }
    return Policy(round(threshold, 6), round(floor, 6), chosen_by), metrics


def choose_policy(embeddings: np.ndarray, labels: np.ndarray) -> tuple[Policy, dict[str, Any]]:
    """Thresholds for a frozen encoder, from out-of-fold predictions on all the training data."""
    scores = classifier.out_of_fold_scores(embeddings, labels)
    return policy_from_scores(scores, labels, "held-out training examples (5 folds)")


def calibration_split(labels: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """A stratified mask of rows kept out of fine-tuning to choose the thresholds on: `share` of each
    intent's examples, at least one, and never an intent's only example."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) >= 2:
            held[members[: max(1, round(len(members) * share))]] = True
    return held


def own_encoder(folder: Path) -> Encoder:
    """The fine-tuned encoder in an artefact folder, served as settings say (its ONNX export kept there)."""
    return Encoder(
        folder / "encoder",
        threads=settings.TANDEM_TORCH_THREADS,
        quantize=settings.TANDEM_SMALL_MODEL_QUANTIZE,
        runtime=settings.TANDEM_SMALL_MODEL_RUNTIME,
        cache_dir=folder,
    )


@dataclass
class Fitted:
    """A trained small model before it is written out: the encoder to serve with, head and policy."""

    encoder: Encoder
    head: classifier.Classifier
    policy: Policy
    metrics: dict[str, Any]
    fine_tune: dict[str, Any] | None


def fit(
    examples: list[tuple[str, str]],
    workdir: Path,
    *,
    base: Encoder | None = None,
    epochs: int | None = None,
    progress: Progress | None = None,
    calibration: Collection[str] | None = None,
) -> Fitted:
    """Train on (text, intent) pairs. With `epochs` > 0 the encoder is fine-tuned (written to
    `workdir/encoder`, its ONNX export beside it) and the thresholds come from a calibration split
    it never saw; with 0 (or no example to spare) the shared encoder stays frozen and out-of-fold
    predictions choose them.

    `calibration`, if given, names the examples (by text) to keep out of fine-tuning and choose the
    thresholds on, instead of a stratified share of each intent's: e.g. a random sample of traffic,
    when the other examples are not one (agents' labels of escalated questions are the hard ones)."""
    if len({label for _, label in examples}) < 2:
        raise ValueError("the small model needs examples of at least two intents")
    say = progress or (lambda message: None)
    base = base or get_encoder()
    epochs = settings.TANDEM_SMALL_MODEL_EPOCHS if epochs is None else epochs
    texts = [text for text, _ in examples]
    labels = np.array([label for _, label in examples])
    if calibration is None:
        held = calibration_split(labels, settings.TANDEM_CALIBRATION_SHARE)
    else:
        chosen = set(calibration)
        held = np.array([text in chosen for text in texts], dtype=bool)
        if held.all() or not held.any():
            raise ValueError("the calibration examples must be some of the examples, not all of them")
    if epochs > 0 and not held.any():
        # Every intent has a single example: nothing could be kept aside to choose the thresholds on,
        # so the encoder stays frozen and out-of-fold predictions choose them.
        say("Too few examples to keep any aside for calibration: the encoder stays frozen")
        epochs = 0
    if epochs <= 0:
        say(f"Embedding {len(texts)} examples with {settings.TANDEM_SMALL_MODEL_NAME}")
        embeddings = base.embed(texts, progress=True)
        say("Choosing the router's thresholds from held-out predictions")
        if calibration is None:
            policy, metrics = choose_policy(embeddings, labels)
        else:
            scores = classifier.held_out_scores(embeddings, labels, held)
            policy, metrics = policy_from_scores(scores, labels[held], "calibration examples given (5 folds)")
        say("Fitting the classifier on all examples")
        return Fitted(base, classifier.Classifier.fit(embeddings, labels), policy, metrics, None)

    from chatbot.small import finetune

    fit_texts = [text for text, keep in zip(texts, held, strict=True) if not keep]
    fit_labels = labels[~held]
    say(f"Embedding {len(fit_texts)} examples ({int(held.sum())} more kept aside to calibrate the router)")
    start = classifier.Classifier.fit(base.embed(fit_texts, progress=True), fit_labels)
    recipe = finetune.Recipe(epochs=epochs)
    say(f"Fine-tuning the encoder for {epochs} epochs on {settings.TANDEM_TRAIN_THREADS} threads")
    classes = start.classes.tolist()
    tuned = finetune.fine_tune(
        base.path,
        fit_texts,
        np.array([classes.index(label) for label in fit_labels]),
        start.coef,
        start.intercept,
        recipe,
        threads=settings.TANDEM_TRAIN_THREADS,
    )
    tuned.save(workdir / "encoder")
    _record_tuned_on(workdir / "encoder", fit_texts)
    encoder = own_encoder(workdir)
    say("Embedding the examples with the fine-tuned encoder")
    head = classifier.Classifier(
        coef=tuned.coef.astype(np.float32),
        intercept=tuned.intercept.astype(np.float32),
        classes=start.classes,
        examples=encoder.embed(fit_texts, progress=True),
        example_labels=fit_labels,
    )
    say("Choosing the router's thresholds on the calibration examples")
    calibration = [text for text, keep in zip(texts, held, strict=True) if keep]
    policy, metrics = policy_from_scores(
        head.score(encoder.embed(calibration)), labels[held], "calibration examples kept out of fine-tuning"
    )
    details = {
        **asdict(recipe),
        "seconds": round(tuned.seconds, 1),
        "calibration_share": settings.TANDEM_CALIBRATION_SHARE,
        "calibration_rows": int(held.sum()),
    }
    return Fitted(encoder, head, policy, metrics, details)


# Beside a fine-tuned encoder's weights: which texts it was fine-tuned on (hashed), so that a head refitted
# on it later chooses its thresholds on the others only.
TUNED_ON_FILE = "tuned_on.json"


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _record_tuned_on(encoder_folder: Path, texts: list[str]) -> None:
    (encoder_folder / TUNED_ON_FILE).write_text(json.dumps({"texts": sorted({_text_key(t) for t in texts})}))


def fit_head(
    examples: list[tuple[str, str]],
    encoder: Encoder,
    *,
    tuned_on: Callable[[list[str], np.ndarray], np.ndarray] | None = None,
    fine_tune: dict[str, Any] | None = None,
    progress: Progress | None = None,
    calibration: Collection[str] | None = None,
) -> Fitted:
    """A new head (classifier, nearest-example vote, thresholds) for an existing encoder, kept as it is.

    The classifier learns from every example. The thresholds come from out-of-fold predictions on the
    examples the encoder was not fine-tuned on (`tuned_on(texts, embeddings)` marks those it was; none
    for a frozen encoder): the rows kept aside for calibration when it was fine-tuned and every example
    added since. The rows it was tuned on stay in each fold's training data but are never scored: the
    encoder has drawn them close to their intent, so their scores would flatter the model. With
    `calibration` (texts), only those of them are scored (see `fit`)."""
    if len({label for _, label in examples}) < 2:
        raise ValueError("the small model needs examples of at least two intents")
    say = progress or (lambda message: None)
    texts = [text for text, _ in examples]
    labels = np.array([label for _, label in examples])
    say(f"Embedding {len(texts)} examples with the encoder as it is")
    embeddings = encoder.embed(texts, progress=True)
    seen = tuned_on(texts, embeddings) if tuned_on else np.zeros(len(texts), dtype=bool)
    scored = ~seen
    if calibration is not None:
        chosen = set(calibration)
        scored &= np.array([text in chosen for text in texts], dtype=bool)
    if not scored.any():
        raise ValueError(
            "the encoder was fine-tuned on every example (of those given for calibration): none is left to "
            "choose the thresholds on (train the model again, or add examples)"
        )
    say(f"Choosing the router's thresholds on {int(scored.sum())} examples the encoder was not tuned on")
    if calibration is not None:
        source = "calibration examples given, the encoder not fine-tuned on them (5 folds)"
    elif seen.any():
        source = "examples the encoder was not fine-tuned on (5 folds)"
    else:
        source = "held-out training examples (5 folds)"
    scores = classifier.held_out_scores(embeddings, labels, scored)
    policy, metrics = policy_from_scores(scores, labels[scored], source)
    say("Fitting the classifier on all examples")
    head = classifier.Classifier.fit(embeddings, labels)
    details = None
    if fine_tune is not None:
        details = {**fine_tune, "calibration_rows": int(scored.sum()), "head_refitted": True}
    return Fitted(encoder, head, policy, metrics, details)


def _link_or_copy(source: str, destination: str) -> None:
    # Artefacts are never modified once written, so two may share the encoder's files.
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def refit_head(
    examples: list[tuple[str, str]],
    base: Path,
    directory: Path | None = None,
    *,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    calibration: Collection[str] | None = None,
) -> Path:
    """Retrain on (text, intent) pairs without fine-tuning: keep the encoder of the artefact `base` (its
    fine-tuned one, or, for a model trained on the frozen encoder, `encoder` or the shared one), fit a
    new head and thresholds on it (`fit_head`), write a new artefact as `train` does (same files and
    meta, plus `refit_from`) and make it current. Returns its folder. `calibration`: see `fit_head`.

    Seconds where `train` fine-tunes for minutes: for retraining after every batch of new labels (new
    intents included), with a full `train` now and then so the encoder learns from them too. The new
    artefact shares the base's encoder files (hard links where the file system allows)."""
    say = progress or (lambda message: None)
    directory = Path(directory or settings.TANDEM_SMALL_MODEL_DIR)
    base_meta = json.loads((base / "meta.json").read_text())
    given = len(examples)
    examples = with_small_talk(examples)
    started = time.monotonic()
    version, target = _new_artefact(directory)
    try:
        tuned_on = None
        if (base / "encoder").is_dir():
            shutil.copytree(base / "encoder", target / "encoder", copy_function=_link_or_copy)
            for exported in base.glob("encoder-*.onnx"):
                _link_or_copy(str(exported), str(target / exported.name))
            tuned_on = _tuned_on_marker(target / "encoder")
            served = own_encoder(target)
        else:
            served = encoder or get_encoder()
        fine_tune = base_meta.get("fine_tune")
        fitted = fit_head(
            examples,
            served,
            tuned_on=tuned_on,
            fine_tune={**fine_tune, "encoder_from": base_meta["version"]} if fine_tune else None,
            progress=say,
            calibration=calibration,
        )
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return _publish(fitted, examples, given, directory, version, started, say, {"refit_from": base_meta["version"]})


def _tuned_on_marker(encoder_folder: Path) -> Callable[[list[str], np.ndarray], np.ndarray]:
    """Marks the texts a fine-tuned encoder was trained on, from the record `fit` keeps beside it."""
    record = encoder_folder / TUNED_ON_FILE
    if not record.exists():
        # Matching the examples by their embeddings is no substitute: the int8 encoder quantises
        # activations per batch, so the same text embedded in another batch moves by about 1 % (cosine).
        raise ValueError(
            f"{encoder_folder.parent.name} does not record the examples its encoder was fine-tuned on "
            "(trained before head refits existed): train the model again first"
        )
    keys = set(json.loads(record.read_text())["texts"])
    return lambda texts, embeddings: np.array([_text_key(text) in keys for text in texts], dtype=bool)


def train(
    examples: list[tuple[str, str]],
    directory: Path | None = None,
    *,
    encoder: Encoder | None = None,
    epochs: int | None = None,
    progress: Progress | None = None,
    calibration: Collection[str] | None = None,
) -> Path:
    """Train on (text, intent) pairs, write a new artefact and make it current. Returns its folder.
    `calibration`: see `fit`."""
    say = progress or (lambda message: None)
    directory = Path(directory or settings.TANDEM_SMALL_MODEL_DIR)
    given = len(examples)
    # Every model knows small talk (unless the knowledge base replaces or settings disable it).
    examples = with_small_talk(examples)
    started = time.monotonic()
    version, target = _new_artefact(directory)
    try:
        fitted = fit(examples, target, base=encoder, epochs=epochs, progress=say, calibration=calibration)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return _publish(fitted, examples, given, directory, version, started, say)


def _new_artefact(directory: Path) -> tuple[str, Path]:
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = directory / version
    target.mkdir(parents=True, exist_ok=False)
    return version, target


def _publish(
    fitted: Fitted,
    examples: list[tuple[str, str]],
    given: int,
    directory: Path,
    version: str,
    started: float,
    say: Progress,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted model's head and meta into its folder, make it current and prune older ones."""
    target = directory / version
    fitted.head.save(target / "weights.npz")
    meta = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "encoder": settings.TANDEM_SMALL_MODEL_NAME + (" (fine-tuned)" if fitted.fine_tune else ""),
        "fine_tune": fitted.fine_tune,
        "data_fingerprint": fingerprint(examples),
        "examples": len(examples),
        "intents": len(fitted.head.classes),
        # Of those, the built-in intents (small talk, talk-to-human) added to the examples given.
        "built_in_examples": len(examples) - given,
        "built_in_intents": len(set(fitted.head.classes.tolist()) & set(builtin())),
        "metrics": fitted.metrics,
        "policy": asdict(fitted.policy),
        **(extra or {}),
        "training_seconds": round(time.monotonic() - started, 2),
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2))
    # Written last and atomically, so a server never sees a half-written artefact as current.
    pointer = directory / "current"
    temporary = pointer.with_suffix(".tmp")
    temporary.write_text(version)
    temporary.replace(pointer)
    say(f"Saved {target}")
    _prune(directory, keep=settings.TANDEM_SMALL_MODEL_KEEP, current=version)
    return target


def _prune(directory: Path, keep: int, current: str) -> None:
    """Delete all but the newest `keep` artefacts: a fine-tuned one holds its encoder (~200 MB)."""
    # Versions are UTC timestamps, so their names sort by age; the current one always stays.
    versions = sorted(
        (entry for entry in directory.iterdir() if entry.is_dir() and (entry / "meta.json").exists()),
        key=lambda entry: entry.name,
    )
    for old in versions[:-keep]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


def current_version(directory: Path | None = None) -> str | None:
    pointer = Path(directory or settings.TANDEM_SMALL_MODEL_DIR) / "current"
    try:
        return pointer.read_text().strip() or None
    except FileNotFoundError:
        return None


def current_meta(directory: Path | None = None) -> dict[str, Any] | None:
    directory = Path(directory or settings.TANDEM_SMALL_MODEL_DIR)
    version = current_version(directory)
    if version is None:
        return None
    meta: dict[str, Any] = json.loads((directory / version / "meta.json").read_text())
    return meta


class SmallModel:
    def __init__(self, folder: Path, encoder: Encoder | None = None) -> None:
        """A model trained on the frozen encoder is served by `encoder` (default: the shared one); a
        fine-tuned one brings its own in `folder/encoder`."""
        self.folder = folder
        self.version = folder.name
        self.meta = json.loads((folder / "meta.json").read_text())
        self.head = classifier.Classifier.load(folder / "weights.npz")
        self.policy = Policy(**self.meta["policy"]) if "policy" in self.meta else None
        if (folder / "encoder").is_dir():
            self.encoder = own_encoder(folder)
        else:
            self.encoder = encoder or get_encoder()

    def predict(self, text: str) -> Prediction:
        return self.predict_many([text])[0]

    def predict_many(self, texts: list[str]) -> list[Prediction]:
        # One tokenisation gives both the vectors and the token counts.
        vectors, tokens = self.encoder.embed_counting(texts)
        scores = self.head.score(vectors)
        return [
            Prediction(str(intent), float(confidence), float(similarity), count)
            for intent, confidence, similarity, count in zip(
                scores.intents, scores.confidences, scores.similarities, tokens, strict=True
            )
        ]

    def nearest_intents(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k intents whose closest example is most similar to the vector, best first."""
        best: dict[str, float] = {}
        similarities = (self.head.examples @ vector).tolist()
        for label, similarity in zip(self.head.example_labels.tolist(), similarities, strict=True):
            if similarity > best.get(label, -2.0):
                best[label] = similarity
        return sorted(best.items(), key=lambda item: item[1], reverse=True)[:k]


class ModelNotTrained(RuntimeError):
    pass


_lock = threading.Lock()
_loaded: SmallModel | None = None
_checked_at = 0.0
RELOAD_CHECK_SECONDS = 2.0


def get_small_model() -> SmallModel:
    """The current artefact, reloaded when a newer one has been trained (checked every few seconds)."""
    global _loaded, _checked_at
    now = time.monotonic()
    directory = Path(settings.TANDEM_SMALL_MODEL_DIR)
    if _loaded is not None and now - _checked_at < RELOAD_CHECK_SECONDS and _loaded.folder.parent == directory:
        return _loaded
    with _lock:
        _checked_at = now
        version = current_version(directory)
        if version is None:
            raise ModelNotTrained(f"no small model in {directory}: run `python manage.py train_small_model`")
        if _loaded is None or _loaded.folder != directory / version:
            _loaded = SmallModel(directory / version)
        return _loaded


def warm_up_small_model() -> None:
    """Load the encoder, the current artefact and the routing signals' models (language, sentiment), and
    route one message, so the first customer waits for nothing."""
    global warmed_up
    from chatbot.routing import Incoming, route_many

    try:
        route_many(get_small_model(), [Incoming("hello, where is my order? Also, how do I return it?")])
    except ModelNotTrained as exc:
        logger.warning("%s", exc)
    warmed_up = True


# Whether this process has finished warming up (reported by the health check).
warmed_up = False

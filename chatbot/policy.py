"""The routing policy: where a message goes (small, large or people) and why.

One function, `decide`, shared by the live path and `evaluate_router`, so that what is measured is
what runs. It reads the signals `chatbot.routing` computes for a message (the small model's
predictions for the whole message and for each of its segments, its language, whether the customer is
upset, whether the encoder read all of it) and returns a `Route`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from chatbot.complaint import Complaint
from chatbot.routes import Destination, Reason
from chatbot.small import model as small_model
from chatbot.small.model import ModelNotTrained, Policy, Prediction, get_small_model
from chatbot.smalltalk import is_small_talk

__all__ = [
    "Destination",
    "Reason",
    "Route",
    "Reply",
    "Part",
    "Signals",
    "Thresholds",
    "OperatingPoint",
    "operating_point",
    "decide",
    "asks_for_human",
]

logger = logging.getLogger(__name__)

# Beside the artefacts in TANDEM_SMALL_MODEL_DIR: the confidence threshold an admin chose for one model
# version (support/tuning writes it, atomically). A file rather than a database row so that this library
# reads it without importing the support side, and every server process sees a new one on its next
# message (one stat per call; the JSON is parsed again only when the file changed).
OPERATING_POINT_FILE = "operating-point.json"


@dataclass(frozen=True)
class OperatingPoint:
    """A confidence threshold chosen for one model version (it never applies to another)."""

    version: str
    confidence: float
    # None: the model's trained out-of-scope floor stays.
    oos_similarity: float | None = None
    chosen_by: str = ""
    chosen_at: str = ""


_read_lock = threading.Lock()
_read: tuple[tuple[str, int, int, int], OperatingPoint | None] | None = None


def operating_point(directory: Path | None = None) -> OperatingPoint | None:
    """The chosen operating point in the model folder, if any (whatever version it is for)."""
    global _read
    path = Path(directory or settings.TANDEM_SMALL_MODEL_DIR) / OPERATING_POINT_FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    # The inode changes on every atomic replace, so a rewrite within the clock's resolution is seen too.
    key = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _read
    if cached is not None and cached[0] == key:
        return cached[1]
    with _read_lock:
        try:
            raw = json.loads(path.read_text())
            point: OperatingPoint | None = OperatingPoint(
                version=str(raw["version"]),
                confidence=float(raw["confidence"]),
                oos_similarity=None if raw.get("oos_similarity") is None else float(raw["oos_similarity"]),
                chosen_by=str(raw.get("chosen_by", "")),
                chosen_at=str(raw.get("chosen_at", "")),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged file must not stop the router: the trained thresholds serve, loudly.
            logger.error("Ignoring %s: %s", path, exc)
            point = None
        _read = (key, point)
        return point


def write_operating_point(point: OperatingPoint | None, directory: Path | None = None) -> None:
    """Replace the operating point atomically (None removes it: the trained thresholds serve)."""
    folder = Path(directory or settings.TANDEM_SMALL_MODEL_DIR)
    path = folder / OPERATING_POINT_FILE
    if point is None:
        path.unlink(missing_ok=True)
        return
    staging = folder / f".{OPERATING_POINT_FILE}-{os.getpid()}-{threading.get_ident()}"
    staging.write_text(json.dumps(point.__dict__, indent=2))
    # A reader sees the old file or the new one, never half of one.
    staging.replace(path)


def _serving_version(trained: Policy) -> str | None:
    """The version of the model this process serves, when `trained` is its policy (what route_many
    passes); None for a model loaded apart (a candidate being compared)."""
    loaded = small_model._loaded
    if loaded is not None and loaded.policy is trained:
        return loaded.version
    return None


@dataclass(frozen=True)
class Thresholds:
    confidence: float
    oos_similarity: float
    sensitive_intents: frozenset[str]
    human_intents: frozenset[str]
    routes: Mapping[Reason, Destination] = field(default_factory=lambda: dict(settings.TANDEM_ROUTES))
    # The knowledge base's language: messages in another one go to the large model.
    language: str = "en"
    # Where the confidence threshold came from: "settings", "operating point" (an admin's choice for
    # this model version), "trained" or "default".
    source: str = "trained"

    @classmethod
    def current(cls, trained: Policy | None = None, version: str | None = None) -> Thresholds:
        """The thresholds in force for the model in use (or the policy given, of model `version`).

        Settings in the environment win; then the operating point an admin chose for this very model
        version (support/tuning); then the thresholds trained with the model; then the defaults."""
        if trained is None:
            try:
                model = get_small_model()
            except ModelNotTrained:
                pass
            else:
                trained, version = model.policy, model.version
        elif version is None:
            version = _serving_version(trained)
        chosen = operating_point() if version is not None else None
        if chosen is not None and chosen.version != version:
            chosen = None
        confidence = settings.TANDEM_CONFIDENCE_THRESHOLD
        source = "settings"
        if confidence is None:
            if chosen is not None:
                confidence, source = chosen.confidence, "operating point"
            elif trained:
                confidence, source = trained.confidence_threshold, "trained"
            else:
                confidence, source = DEFAULT_CONFIDENCE, "default"
        similarity = settings.TANDEM_OOS_SIMILARITY
        if similarity is None:
            if chosen is not None and chosen.oos_similarity is not None:
                similarity = chosen.oos_similarity
            else:
                similarity = trained.oos_similarity if trained else DEFAULT_OOS_SIMILARITY
        return cls(
            confidence=confidence,
            oos_similarity=similarity,
            sensitive_intents=frozenset(settings.TANDEM_SENSITIVE_INTENTS),
            human_intents=frozenset(settings.TANDEM_HUMAN_INTENTS),
            routes=dict(settings.TANDEM_ROUTES),
            language=settings.TANDEM_KB_LANGUAGE,
            source=source,
        )

    def confident(self, prediction: Prediction) -> bool:
        return prediction.similarity >= self.oos_similarity and prediction.confidence >= self.confidence

    def built_in(self, prediction: Prediction) -> bool:
        """Above the built-in intents' own bars (see SMALL_TALK_CONFIDENCE)."""
        return prediction.similarity >= min(self.oos_similarity, SMALL_TALK_SIMILARITY) and (
            prediction.confidence >= min(self.confidence, SMALL_TALK_CONFIDENCE)
        )

    def asks_for_people(self, prediction: Prediction) -> bool:
        """The classifier takes the message for a request for a person (a human intent), surely enough:
        the same lower bars as small talk, since a wrong guess costs an agent a look, not a wrong answer."""
        return prediction.intent in self.human_intents and self.built_in(prediction)

    def small_talk(self, prediction: Prediction) -> bool:
        """Small talk, surely enough to answer it as such: the bar is lower than for an article's answer
        (a wrong "Hello! How can I help?" costs the customer one more message; an escalation costs a
        large-model call and tells them a person is looking into "hi")."""
        return is_small_talk(prediction.intent) and self.built_in(prediction)


# For a model trained before thresholds were stored with it.
DEFAULT_CONFIDENCE = 0.5
DEFAULT_OOS_SIMILARITY = 0.45
# The built-in intents' own bars, for small talk and requests for a person (the articles' bars apply
# when they are lower). A model fine-tuned on a
# knowledge base sets its out-of-scope floor high (0.57 on BANKING77), and ordinary small talk falls
# below it; with these, on the routing dev set, 90 % of small talk was recognised and 5 % of off-topic
# English questions were taken for small talk, none of the BANKING77 questions (bench/README.md).
SMALL_TALK_CONFIDENCE = 0.4
SMALL_TALK_SIMILARITY = 0.4


@dataclass(frozen=True)
class Part:
    """One segment of a message (chatbot.segments) and what the small model made of it."""

    text: str
    prediction: Prediction
    # Opened by "also", "another thing" …: the customer meant a further request.
    joined: bool = False
    question: bool = False


@dataclass(frozen=True)
class Signals:
    text: str
    # The small model's prediction for the whole message.
    whole: Prediction
    # Its segments, when it has more than one (empty: the whole message is one segment).
    parts: tuple[Part, ...] = ()
    # The language the message is taken to be in (chatbot.language.message_language).
    language: str = "en"
    complaint: Complaint | None = None
    # The encoder read only the start of the message.
    truncated: bool = False


@dataclass(frozen=True)
class Reply:
    """A part the small tier answers: with the article (or small talk) of this intent."""

    intent: str
    confidence: float


@dataclass(frozen=True)
class Route:
    destination: Destination
    reason: Reason | None = None
    # For the small tier: what to answer, one reply per part, in the message's order.
    replies: tuple[Reply, ...] = ()

    @property
    def answer(self) -> bool:
        return self.destination == Destination.SMALL


def _escalate(reason: Reason, limits: Thresholds) -> Route:
    return Route(limits.routes.get(reason, Destination.LARGE), reason)


def _answer(*predictions: Prediction) -> Route:
    replies: list[Reply] = []
    for prediction in predictions:
        if prediction.intent not in {reply.intent for reply in replies}:
            replies.append(Reply(prediction.intent, prediction.confidence))
    return Route(Destination.SMALL, None, tuple(replies))


# Explicit requests for a person. The classifier also learns them (the `talk-to-human` article);
# this catches wordings it was not shown, whatever else the message says.
_PERSON = (
    r"(?:a\s+|an\s+|some\s+|the\s+|your\s+|one\s+of\s+your\s+)?(?:real\s+|live\s+|actual\s+)?"
    r"(?:human(?:\s+being|\s+agent)?|person|agent|someone|somebody|representative|rep|operator|employee|"
    r"member\s+of\s+(?:staff|your\s+team)|staff\s+member|customer\s+(?:service|support)\s+(?:agent|rep\w*|person)|"
    r"advisor|adviser|assistant|colleague|manager|support\s+team)"
)
_HUMAN_REQUEST = re.compile(
    r"\b(?:"
    r"(?:talk|speak|chat|chatt)(?:ing)?\s+(?:to|with)\s+" + _PERSON + r"(?!\s+(?:about|for\s+my|fee))"
    r"|(?:connect|transfer|put|pass|forward|hand|send|escalate)\s+(?:me|this|it|my\s+\w+)\s+"
    r"(?:over\s+)?(?:to|through\s+to|with|on\s+to)\s+"
    + _PERSON
    + r"|(?:put\s+me\s+in\s+touch\s+with|get\s+me|give\s+me|"
    r"i\s+(?:want|need|would\s+like|'d\s+like)\s+(?:to\s+have\s+)?)\s*"
    r"(?:a|an|some)\s+(?:real\s+|live\s+|actual\s+)?(?:human|person|agent|operator|representative)"
    r"|(?:contact|reach)(?:ing)?\s+(?:a\s+|an\s+)?(?:real\s+|live\s+)?"
    r"(?:human|person|agent|operator|representative|assistant|someone|somebody)"
    r"|(?:help|assistance|support)\s+from\s+(?:a\s+|an\s+)?(?:real\s+|live\s+)?(?:human|person|agent)"
    r"|(?:transfer|forward|hand|pass)\s+(?:\w+\s+){0,3}?(?:to|over\s+to)\s+(?:a\s+|an\s+|your\s+)?(?:human|person|agent|team|operator)\b"
    r"|(?:real|live|actual)\s+(?:human|person|agent)"
    r"|human\s+(?:please|agent|being|support|help)|(?:agent|operator|representative)\s+please"
    r"|(?:not|rather\s+not|don't\s+want\s+to)\s+(?:talk|speak|chat)(?:ing)?\s+(?:to|with)\s+a\s+(?:bot|machine|robot|computer)"
    r"|(?:are\s+there|is\s+there)\s+(?:also\s+|any\s+)?(?:humans?|people|persons?|someone|anyone)\s+(?:available|working|there|i\s+can)"
    r"|(?:humans?|persons?|agents?|operators?|representatives?|someone|somebody)\s+(?:available|around\s+to\s+help|online)"
    r"|real\s+(?:\w+\s+)?(?:employee|staff|member\s+of\s+staff)"
    r"|(?:do\s+not|don't|dont)\s+(?:like|want)\s+(?:to\s+)?(?:talk|speak|chat)(?:ing)?\s+(?:to|with)\s+(?:a\s+|the\s+)?(?:bot|machine|robot|computer)"
    r"|(?:talk|speak|chat)(?:ing)?\s+(?:to|with)\s+(?:a\s+|the\s+|this\s+)?(?:bot|machine|robot|computer)\s+is\s+(?:\w+\s+)?(?:stupid|useless|pointless|annoying|frustrating|a\s+waste)"
    r")",
    re.IGNORECASE,
)
# Misspelt key words ("hman agent", "contacy an operator", "chattinb with …") are read as the word they
# nearly are before the expression above looks at the message: one typing slip (an edit, or two
# letters swapped) in a word of five letters or more.
_KEY_WORDS = (
    "human",
    "humans",
    "person",
    "agent",
    "operator",
    "representative",
    "someone",
    "somebody",
    "contact",
    "contacting",
    "speak",
    "talking",
    "speaking",
    "chatting",
    "connect",
    "transfer",
    "employee",
    "available",
)
# Real words one slip from a key word, which must stay themselves.
_NOT_SLIPS = frozenset({"contract", "persons", "agents", "humane", "connects", "transfers", "steak", "sneak"})
_LETTERS = re.compile(r"[A-Za-z]{4,}")


def _slip(match: re.Match[str]) -> str:
    word = match.group(0)
    lowered = word.lower()
    if lowered in _KEY_WORDS or lowered in _NOT_SLIPS:
        return word
    found = process.extractOne(lowered, _KEY_WORDS, scorer=DamerauLevenshtein.distance, score_cutoff=1)
    if found is None or len(found[0]) < 5:
        return word
    return str(found[0])


# "Are you a real person?" asks what the assistant is (small talk, answered honestly with how to reach a
# person), not for a person: such a question is taken out before the expression looks.
_WHAT_ARE_YOU = re.compile(
    r"\b(?:are\s+you|you\s+are|you're|is\s+this|am\s+i\s+(?:talking|speaking|chatting)\s+(?:to|with))\s+"
    r"(?:a\s+|an\s+)?(?:real\s+|live\s+|actual\s+)?(?:human(?:\s+being)?|person|bot|robot|machine)\b"
    r"(?:\s+or\s+(?:a\s+|an\s+)?(?:real\s+|live\s+|actual\s+)?\w+)?",
    re.IGNORECASE,
)


def asks_for_human(text: str) -> bool:
    text = _WHAT_ARE_YOU.sub(" ", text)
    return bool(_HUMAN_REQUEST.search(text) or _HUMAN_REQUEST.search(_LETTERS.sub(_slip, text)))


def decide(signals: Signals, thresholds: Thresholds | None = None) -> Route:
    limits = thresholds or Thresholds.current()
    # A customer who asks for a person gets one, even if the bot could answer.
    if asks_for_human(signals.text):
        return _escalate(Reason.HUMAN_REQUESTED, limits)
    # The encoder and the articles are in the knowledge base's language; the large model is told to
    # answer in the customer's.
    if signals.language != limits.language:
        return _escalate(Reason.LANGUAGE, limits)
    # An upset customer goes to people even when an article matches.
    if signals.complaint is not None and signals.complaint.upset:
        return _escalate(Reason.COMPLAINT, limits)

    segments = signals.parts or (Part(signals.text, signals.whole),)
    talk = [part for part in segments if limits.small_talk(part.prediction)]
    asks = [part for part in segments if not limits.small_talk(part.prediction)]
    if limits.small_talk(signals.whole) and not any(limits.confident(part.prediction) for part in asks):
        # Small talk as a whole ("hello, are you still there?"), with no request the model is sure of.
        return _answer(signals.whole)
    if not asks:
        # Only small talk ("hi", "thanks, bye"): one friendly reply, never an escalation.
        return _answer(max(talk, key=lambda part: part.prediction.confidence).prediction)
    if len(asks) == 1:
        # One request, perhaps with a greeting or thanks around it: decided on the request alone.
        only = asks[0].prediction if signals.parts else signals.whole
        return _single(only, signals.truncated, limits)
    return _several(asks, signals, limits)


def _single(prediction: Prediction, truncated: bool, limits: Thresholds) -> Route:
    if limits.asks_for_people(prediction):
        return _escalate(Reason.HUMAN_REQUESTED, limits)
    # A sensitive topic goes to people however unsure the classifier is that it is one.
    if prediction.intent in limits.sensitive_intents and prediction.similarity >= limits.oos_similarity:
        return _escalate(Reason.SENSITIVE, limits)
    # The encoder read only the start: its scores say little about the whole.
    if truncated:
        return _escalate(Reason.LONG, limits)
    if prediction.similarity < limits.oos_similarity:
        return _escalate(Reason.OUT_OF_SCOPE, limits)
    if prediction.confidence < limits.confidence:
        return _escalate(Reason.LOW_CONFIDENCE, limits)
    return _answer(prediction)


# A segment this likely to be about an intent of its own is a request, even when the classifier is not
# sure enough to answer it.
PLAUSIBLE_CONFIDENCE = 0.5


def _several(asks: list[Part], signals: Signals, limits: Thresholds) -> Route:
    """Two or more segments that are not small talk: one request with context around it, or several."""
    for part in asks:
        if part.prediction.similarity >= limits.oos_similarity and part.prediction.intent in limits.sensitive_intents:
            return _escalate(Reason.SENSITIVE, limits)
        if limits.asks_for_people(part.prediction):
            return _escalate(Reason.HUMAN_REQUESTED, limits)
    plausible = [
        part
        for part in asks
        if part.prediction.similarity >= limits.oos_similarity and part.prediction.confidence >= PLAUSIBLE_CONFIDENCE
    ]
    intents = list(dict.fromkeys(part.prediction.intent for part in plausible))
    joined = any(part.joined for part in asks)
    # A question of its own that the classifier is sure is about something else than the whole message.
    asked_apart = any(
        part.question and limits.confident(part.prediction) and part.prediction.intent != signals.whole.intent
        for part in asks
    )
    # Without a word that marks a further request ("also", "another thing", a new line …) or such a
    # question, a whole message the classifier is sure of is one request told in several sentences.
    if len(intents) >= 2 and (joined or asked_apart or not limits.confident(signals.whole)):
        # Several requests: answered only when each is confidently routine, never one answered and one
        # dropped.
        strong = [part for part in plausible if limits.confident(part.prediction)]
        weak_requests = [part for part in asks if part not in strong and (part.question or part.joined)]
        # Only a separate question tells it apart (no marker, and the classifier is sure of the whole):
        # it may be one request after all, so rather than answer two things the large model reads it.
        marked = joined or not limits.confident(signals.whole)
        if len(strong) == len(plausible) and not weak_requests and marked:
            return _answer(*(part.prediction for part in strong))
        return _escalate(Reason.MULTI_PART, limits)
    # One request, perhaps with context around it: decided on the whole message. (Answering instead the
    # one segment the classifier is sure of, when it is unsure of the whole, answered 10 more of
    # BANKING77's test questions, 7 of them wrongly.)
    chosen = signals.whole
    others = [part for part in asks if part.prediction.intent != chosen.intent]
    # The customer marked a further request, or asked another plausible question the classifier is not
    # sure of: answering this one would drop it.
    another = joined or (
        not limits.confident(signals.whole)
        and any(part.question and part.prediction.confidence >= PLAUSIBLE_CONFIDENCE for part in others)
    )
    if others and another and any(limits.confident(part.prediction) for part in (*asks, Part("", chosen))):
        return _escalate(Reason.MULTI_PART, limits)
    return _single(chosen, signals.truncated, limits)

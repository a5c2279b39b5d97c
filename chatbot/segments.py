"""Splitting a customer's message into the things it says: sentences and clauses joined by "and also",
"another thing", "plus" and the like, with a greeting in front or thanks behind set apart.

The policy classifies each segment: small-talk segments are set aside, and two or more segments that
ask different things make a multi-part message. Splitting too eagerly costs nothing by itself (a
context sentence in front of a question is not confidently anything, and is not a second question),
so the rules below favour finding every real boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A greeting in front of the message ("hi, …", "Hello team! …"): set apart so the rest is classified alone.
_GREETING = re.compile(
    r"^\s*(?:(?:hi|hello|hey|hiya|heya|howdy|yo|greetings|good\s+(?:morning|afternoon|evening|day)|morning|evening)"
    r"(?:\s+(?:there|team|all|guys|folks|everyone|support|again|mate))?"
    r"(?:\s*[,!.:;\-–—]+\s*|\s+)"
    r"(?:(?:i\s+)?hope\s+you(?:'re|\s+are)\s+(?:well|doing\s+well|good)[,!.]*\s*)?)",
    re.IGNORECASE,
)
# Thanks or a plea behind the message ("…, thanks!", "… thank you in advance").
_THANKS = re.compile(
    r"(?:[\s,.;!-]+)((?:many\s+)?(?:thanks?(?:\s+you)?|thx|ty|cheers|ta)(?:\s+(?:so\s+much|a\s+lot|in\s+advance|again))?"
    r"|please\s+help(?:\s+me)?|pls\s+help|help\s+please)[\s.!]*$",
    re.IGNORECASE,
)
# Sentence ends: . ! ? (not inside numbers such as 2.5) followed by space.
_SENTENCE = re.compile(r"(?<=[.!?])(?<!\d\.)\s+")
# A sentence end with no stop: a capitalised question word after a lower-case word ("… this morning Is
# there a limit?"). People who skip the full stop still capitalise the next sentence (case-sensitive on
# purpose); both sides must be sentences of their own (MIN_SENTENCE_WORDS), not "Where Is the code?".
_UNSTOPPED = re.compile(
    r"(?<=[a-z0-9,])\s+(?=(?:Is|Are|How|What|Where|When|Why|Which|Who|Can|Could|Do|Does|Did|Will|Would|Should|"
    r"Am|Was|Were|Has|Have)\s)"
)
MIN_SENTENCE_WORDS = 3
# Words that open a further question when they start a clause or sentence.
_CONNECTOR_START = re.compile(
    r"^(?:and\s+also|also|plus|oh\s+and|and\s+another\s+thing|another\s+thing|one\s+more\s+thing|and\s+one\s+more\s+thing|"
    r"(?:and\s+)?(?:i\s+(?:also\s+)?have\s+)?(?:one\s+more|another|a\s+second|a\s+further|an\s+unrelated|a\s+separate)\s+question|"
    r"and\s+besides|besides|and(?=\s+\w)|"
    r"secondly|thirdly|additionally|separately|besides(?:\s+that)?|on\s+(?:another|a\s+different|a\s+separate)\s+note|"
    r"unrelated(?:\s+but)?|btw|by\s+the\s+way|lastly|finally|and\s+finally|as\s+well(?:\s+as\s+that)?|"
    r"i\s+also\s+(?:have|had)\s+(?:a|another)\s+question)\b[\s,:;.-]*",
    re.IGNORECASE,
)
# Clause boundaries inside a sentence that join two requests.
_CLAUSE = re.compile(
    r"\s*;\s*"
    r"|,?\s+(?=(?:and\s+also|and\s+i\s+also|and\s+(?:another|one\s+more)\s+thing|oh\s+and|plus\s*,|also\s*,|"
    r"as\s+well\s+as\s+that|and\s+secondly|and\s+separately|and\s+additionally|and\s+btw|and\s+by\s+the\s+way)\b)"
    r"|,\s*(?=(?:and\s+)?(?:how|what|where|when|why|which|who|can|could|do|does|did|is|are|will|would|should)\s)",
    re.IGNORECASE,
)
# "… and I also want …": a further request, kept whole ("I also want to change my address").
_ALSO_I = re.compile(r"^(?:and\s+)?i\s+(?:also|additionally)\b", re.IGNORECASE)
_QUESTION_START = re.compile(
    r"^(?:how|what|where|when|why|which|who|whom|whose|can|could|do|does|did|is|are|was|were|will|would|should|may|"
    r"shall|have|has|i\s+(?:also\s+)?(?:want|need|wanna)|i'?d\s+(?:also\s+)?like|i\s+would\s+(?:also\s+)?like|i\s+wanna|please|pls|tell\s+me|help|is\s+there|"
    r"are\s+there|how's|what's|where's|i'm\s+trying|i\s+am\s+trying|need|want|explain|show\s+me|let\s+me\s+know)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Segment:
    text: str
    # Opened by a connector ("also", "another thing", …): the writer meant a further request.
    joined: bool
    # Reads as a question or a request (a question mark, or a question or request word in front).
    question: bool


def words(text: str) -> int:
    return len(_WORD.findall(text))


def split(text: str) -> list[Segment]:
    """The message's segments, in order; a message with one thing to say is one segment."""
    text = text.strip()
    pieces: list[tuple[str, bool]] = []
    greeting = _GREETING.match(text)
    if greeting and greeting.end() < len(text) and words(text[greeting.end() :]) >= 2:
        pieces.append((text[: greeting.end()].strip(" ,.;:-–—"), False))
        text = text[greeting.end() :]
    thanks = _THANKS.search(text)
    tail = None
    if thanks and thanks.start() > 0 and words(text[: thanks.start()]) >= 2:
        tail = thanks.group(1)
        text = text[: thanks.start()]
    lines = [line for line in re.split(r"\s*\n+\s*", text) if line.strip()]
    for line_number, line in enumerate(lines):
        for sentence_number, sentence in enumerate(_sentences(line)):
            _add_sentence(pieces, sentence, new_line=line_number > 0 and sentence_number == 0)
    if tail:
        pieces.append((tail, False))
    if not pieces:
        return [Segment(text, False, is_question(text))]
    return [Segment(piece, joined, is_question(piece)) for piece, joined in pieces]


def _sentences(line: str) -> list[str]:
    found: list[str] = []
    for sentence in _SENTENCE.split(line):
        start = 0
        for boundary in _UNSTOPPED.finditer(sentence):
            before, after = sentence[start : boundary.start()], sentence[boundary.end() :]
            if words(before) >= MIN_SENTENCE_WORDS and words(after) >= MIN_SENTENCE_WORDS:
                found.append(before)
                start = boundary.end()
        found.append(sentence[start:])
    return found


def _add_sentence(pieces: list[tuple[str, bool]], sentence: str, new_line: bool) -> None:
    """Append a sentence's clauses; a new line starts a further request."""
    sentence_joined = new_line
    connector = _CONNECTOR_START.match(sentence.strip())
    if connector and connector.end() < len(sentence.strip()) and pieces:
        sentence_joined = True
        sentence = sentence.strip()[connector.end() :]
    for number, clause in enumerate(_CLAUSE.split(sentence)):
        clause = clause.strip()
        if not clause:
            continue
        joined = sentence_joined and number == 0
        connector = _CONNECTOR_START.match(clause)
        if connector and connector.end() < len(clause) and pieces:
            joined = True
            clause = clause[connector.end() :].strip()
        elif _ALSO_I.match(clause):
            joined = True
            clause = re.sub(r"^and\s+", "", clause, flags=re.IGNORECASE)
        elif clause.lower().startswith("and ") and pieces:
            clause = clause[4:].strip()
        if clause:
            pieces.append((clause, joined))


def is_question(text: str) -> bool:
    stripped = text.strip()
    return stripped.endswith("?") or bool(_QUESTION_START.match(stripped))

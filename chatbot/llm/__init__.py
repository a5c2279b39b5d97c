"""Large-model back ends. `get_backend()` returns the one configured in Django settings.

Back-end modules are imported only on demand, so importing this package stays cheap (no torch).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .base import ChatMessage, Generation, LLMBackend, LLMError, TokenCallback

__all__ = [
    "ChatMessage",
    "Generation",
    "LLMBackend",
    "LLMError",
    "TokenCallback",
    "get_backend",
    "reset_backend",
]

DEFAULT_BACKEND = "chatbot.llm.local.TransformersBackend"

_backend: LLMBackend | None = None
_lock = threading.Lock()


def get_backend() -> LLMBackend:
    """The process-wide back end built from TANDEM_LLM_BACKEND / TANDEM_LLM_OPTIONS."""
    global _backend
    if _backend is not None:
        return _backend
    with _lock:
        if _backend is None:
            _backend = _build()
        return _backend


def _build() -> LLMBackend:
    from django.conf import settings
    from django.utils.module_loading import import_string

    path: str = getattr(settings, "TANDEM_LLM_BACKEND", DEFAULT_BACKEND)
    options: Any = getattr(settings, "TANDEM_LLM_OPTIONS", None) or {}
    if not isinstance(options, dict):
        raise ImproperlyConfigured("TANDEM_LLM_OPTIONS must be a dict of constructor arguments.")
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"TANDEM_LLM_BACKEND={path!r} is not an importable class path (e.g. {DEFAULT_BACKEND!r}): {exc}"
        ) from exc
    try:
        backend: LLMBackend = cls(**options)
    except TypeError as exc:
        raise ImproperlyConfigured(f"TANDEM_LLM_OPTIONS do not fit {path}: {exc}") from exc
    return backend


def reset_backend() -> None:
    """Forget the cached back end (tests; settings changes)."""
    global _backend
    with _lock:
        _backend = None


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    # override_settings in tests would otherwise keep serving the back end built before it.
    if setting in ("TANDEM_LLM_BACKEND", "TANDEM_LLM_OPTIONS"):
        reset_backend()
    if setting in ("TANDEM_LLM_BREAKER_FAILURES", "TANDEM_LLM_BREAKER_SECONDS", "REDIS_URL"):
        from .breaker import forget_breaker

        forget_breaker()

"""What a model call costs, from token counts and the price table in settings (USD per million tokens)."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings

logger = logging.getLogger(__name__)
_MILLION = Decimal(1_000_000)
_warned: set[str] = set()


def price(model: str) -> tuple[Decimal, Decimal]:
    """(input, output) USD per million tokens; an unpriced model costs 0, with one warning per process."""
    entry = settings.TANDEM_PRICES.get(model)
    if entry is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning("No price for model %r in TANDEM_PRICES: its tokens are counted as free", model)
        return Decimal(0), Decimal(0)
    return Decimal(str(entry.get("input", 0))), Decimal(str(entry.get("output", 0)))


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    input_price, output_price = price(model)
    return (input_price * input_tokens + output_price * output_tokens) / _MILLION

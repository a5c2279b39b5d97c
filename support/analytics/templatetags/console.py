"""Formatting for the console's pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def ms(value: float | int | None) -> str:
    """A time in milliseconds as people read it: "3 ms", "1.2 s", "4.5 min", "2.0 h"."""
    if value is None:
        return "—"
    if value < 1_000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1_000:.1f} s"
    if value < 3_600_000:
        return f"{value / 60_000:.1f} min"
    return f"{value / 3_600_000:.1f} h"

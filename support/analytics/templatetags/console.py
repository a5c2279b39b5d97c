"""Formatting for the console's pages."""

from __future__ import annotations

from django import template
from django.utils.html import conditional_escape, json_script
from django.utils.safestring import mark_safe

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


@register.simple_tag(takes_context=True)
def json_data(context: template.Context, value: object, element_id: str) -> str:
    """`json_script`, with the page's CSP nonce on the tag like every other inline block (data only: it
    never runs, but the pages hold every inline block to the same rule)."""
    tag = json_script(value, element_id)
    nonce = conditional_escape(str(context.get("CSP_NONCE") or ""))
    return mark_safe(tag.replace("<script ", f'<script nonce="{nonce}" ', 1))  # noqa: S308 - built from escaped parts

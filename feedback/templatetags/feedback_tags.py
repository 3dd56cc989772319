"""Number formatting for campaign pages, and the sign-offs block shown on a model version's page."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


def _unknown(value: Any) -> bool:
    """Missing numbers (None, or the empty string a template gives for an absent key) show as a dash."""
    return not isinstance(value, (int, float)) or isinstance(value, bool)


@register.filter
def kpi_value(value: Any, kind: str) -> str:
    """A rate as a percentage, an amount with two decimals; a dash when unknown."""
    if _unknown(value):
        return "—"
    return f"{value * 100:.1f}%" if kind == "binary" else f"{value:,.2f}"


@register.filter
def kpi_diff(value: Any, kind: str) -> str:
    """A difference: points for rates, plain for amounts, with its sign."""
    if _unknown(value):
        return "—"
    return f"{value * 100:+.1f} pts" if kind == "binary" else f"{value:+,.2f}"


@register.filter
def percent(value: Any) -> str:
    return "—" if _unknown(value) else f"{value * 100:+.1f}%"


@register.filter
def p_value(value: Any) -> str:
    if _unknown(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


@register.filter
def money(value: Any) -> str:
    return "—" if _unknown(value) else f"{value:,.0f}"


@register.inclusion_tag("feedback/_version_sign_offs.html")
def campaign_sign_offs(version: Any) -> dict[str, Any]:
    from feedback.selectors import sign_offs_of_version

    return {"sign_offs": list(sign_offs_of_version(version))}

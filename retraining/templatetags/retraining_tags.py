"""Template tags other apps' pages use to show retraining facts (e.g. on a version's page)."""

from __future__ import annotations

from typing import Any

from django import template

from retraining import selectors

register = template.Library()


@register.inclusion_tag("retraining/_produced_by.html")
def retraining_produced_by(version: Any) -> dict[str, Any]:
    """"Produced by retraining run N" for a version a run registered; nothing otherwise."""
    return {"run": selectors.run_of_version(version)}

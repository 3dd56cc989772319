"""Retraining writes: recipes, triggers and runs."""

from __future__ import annotations


def retraining_trigger_on_alert(*, alert_id: int) -> None:
    """An alert opened: start a retraining run when the model's triggers ask for it.

    Recipes and triggers come with the retraining feature; until a model has a
    recipe whose triggers include the alert's kind, nothing happens.
    """
    return None

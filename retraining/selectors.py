"""Retraining reads. Visibility follows the registry: a run or recipe is visible with its model."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from registry.models import ModelVersion, RegisteredModel
from registry.selectors import models_visible_to
from retraining.models import RetrainingRun, TrainingRecipe


def runs_visible_to(user: Any, *, model: str = "") -> QuerySet[RetrainingRun]:
    runs = RetrainingRun.objects.filter(model__in=models_visible_to(user).values("pk"))
    if model:
        runs = runs.filter(model__name=model)
    return runs.select_related("model", "produced_version", "champion", "requested_by", "promotion_request")


def run_for(user: Any, pk: int) -> RetrainingRun:
    run = runs_visible_to(user).filter(pk=pk).first()
    if run is None:
        raise Http404("No such retraining run.")
    return run


def recipe_of(model: RegisteredModel) -> TrainingRecipe | None:
    return TrainingRecipe.objects.filter(model=model).select_related("owner", "schedule").first()


def run_of_version(version: ModelVersion) -> RetrainingRun | None:
    """The run that produced `version`, if a retraining run did."""
    return RetrainingRun.objects.filter(produced_version=version).first()


def recipes_visible_to(user: Any) -> QuerySet[TrainingRecipe]:
    return TrainingRecipe.objects.filter(model__in=models_visible_to(user).values("pk")).select_related("model")

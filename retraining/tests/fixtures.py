"""Retraining test helpers: a champion in production, Telco-like training files, recipes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from registry import promotions
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame, csv_bytes, upload
from retraining import services
from retraining.models import TrainingRecipe

CARD = {"description": "Logistic regression on tenure and contract.", "intended_use": "Retention emails."}


def training_frame(rows: int = 1500, seed: int = 11, *, shifted: bool = True) -> pd.DataFrame:
    """Telco-like customers with the hour each was observed, oldest first. `shifted`: the world changed
    since the champion was trained (electronic-check payers now churn far more), so a retrained
    model beats it."""
    frame = churn_frame(rows, seed=seed)
    if shifted:
        rng = np.random.default_rng(seed + 1)
        logit = (0.8 - 0.05 * frame["tenure"] + 0.02 * frame["MonthlyCharges"]
                 - 1.5 * (frame["Contract"] != "Month-to-month") + 2.5 * (frame["PaymentMethod"] == "Electronic check")
                 - 1.5 * (frame["PaymentMethod"] != "Electronic check"))
        frame["Churn"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    frame.insert(0, "observed_on", pd.date_range("2026-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M"))
    return frame


def dataset_upload(frame: pd.DataFrame | None = None, name: str = "customers.csv") -> Any:
    return upload(csv_bytes(training_frame() if frame is None else frame), name)


def recipe_input(**changes: Any) -> services.RecipeInput:
    fields: dict[str, Any] = {"target_column": "Churn", "estimator": "LogisticRegression",
                              "hyperparameters": {"C": 0.5, "max_iter": 500}, "split_column": "observed_on",
                              "holdout_fraction": 0.25}
    return services.RecipeInput(**{**fields, **changes})


@pytest.fixture
def make_recipe(data_scientist: Any, churn_model: Any) -> Callable[..., TrainingRecipe]:
    def make(frame: pd.DataFrame | None = None, **changes: Any) -> TrainingRecipe:
        return services.recipe_save(model=churn_model, user=data_scientist, data=recipe_input(**changes),
                                    dataset=dataset_upload(frame))

    return make


@pytest.fixture
def champion(register: Callable[..., ModelVersion], validate: Callable[..., ModelVersion], data_scientist: Any,
             approver: Any) -> ModelVersion:
    """v1 of `churn`, validated and approved into production."""
    version = validate(register(**CARD))
    assert version.status == "ready", version.status_reason
    request = promotions.promotion_open(version=version, user=data_scientist, target="production",
                                        justification="First model.")
    promotions.promotion_gates_evaluate(request_id=request.pk)
    promotions.promotion_decide(request=request, user=approver, decision="approve")
    version.refresh_from_db()
    assert version.stage == "production"
    return version

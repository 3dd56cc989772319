"""The data side of a run: assemble the rows, check them, split them in time, fingerprint them, fit.

Every refusal is a `TrainingFailed` whose message is shown to people as the run's reason,
so each one says what is wrong and what to change.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.utils import timezone

from registry import artifacts
from registry.sandbox import read_dataset
from retraining import recipes
from retraining.models import DataSource, RecipeKind, TrainingRecipe

PREDICTION_TIME_COLUMN = "scored_at"
MIN_TRAINING_ROWS = 20
MIN_HOLDOUT_ROWS = 10

MSG_TARGET_MISSING = "The target column {target!r} is not in the training data (columns: {columns})."
MSG_TARGET_EMPTY = "The target column {target!r} has no values."
MSG_INPUTS_MISSING = "The training data lacks input columns the model takes: {columns}."
MSG_SPLIT_MISSING = "The split column {column!r} is not in the training data."
MSG_SPLIT_NOT_TIME = "The split column {column!r} cannot be read as dates or times."
MSG_TOO_FEW = (
    "Too few rows: {train} to train on and {holdout} held out (at least {min_train} and {min_holdout} are needed). "
    "Move the cutoff, change the held-out fraction or widen the window."
)
MSG_ONE_CLASS = "The training rows hold a single class ({value!r}): a classifier needs at least two."
MSG_NO_DATASET = "The recipe has no training dataset: upload one in the recipe editor."
MSG_NO_PREDICTIONS = "No logged prediction of the last {days} days has a label yet: nothing to train on."
MSG_DATASET_ALTERED = "The stored training dataset no longer matches its recorded hash; it was not used."
MSG_FIT_FAILED = "Training failed: {error}"
MSG_NO_PREDICT = "The training function returned a {kind}, which has no predict method."


class TrainingFailed(Exception):
    """A readable reason the run cannot go on."""


@dataclass
class Prepared:
    train: pd.DataFrame
    holdout: pd.DataFrame
    inputs: list[dict[str, Any]]
    fingerprint: str
    description: str


# --- the rows ----------------------------------------------------------------------------------


def load_rows(recipe: TrainingRecipe, workdir: Path) -> tuple[pd.DataFrame, str]:
    """All candidate rows and a sentence saying where they came from."""
    if recipe.data_source == DataSource.PREDICTIONS:
        return _predictions_frame(recipe), f"logged predictions of the last {recipe.window_days} days with labels"
    if not recipe.dataset_key:
        raise TrainingFailed(MSG_NO_DATASET)
    try:
        with artifacts.blob_local_copy(recipe.dataset_key, recipe.dataset_sha256, workdir) as path:
            frame = read_dataset(str(path), recipe.dataset_format)
    except artifacts.ArtifactTampered:
        raise TrainingFailed(MSG_DATASET_ALTERED) from None
    name = recipe.dataset_filename or "the uploaded dataset"
    return frame, f"{name} (sha256 {recipe.dataset_sha256[:12]}…)"


def _predictions_frame(recipe: TrainingRecipe) -> pd.DataFrame:
    """The latest logged features of each labelled entity in the window, with its label as the target."""
    from feedback.models import Label
    from scoring.models import PredictionLog

    since = timezone.now() - timedelta(days=recipe.window_days)
    labelled = Label.objects.filter(model=recipe.model_id)
    labels = dict(labelled.values_list("entity_id", "label"))
    # A subquery, not a list: a parameter list would hit PostgreSQL's bind-parameter limit.
    logged = (PredictionLog.objects.filter(model=recipe.model_id, created_at__gte=since,
                                           entity_id__in=labelled.values("entity_id"))
              .order_by("entity_id", "-created_at", "-id").values_list("entity_id", "features", "created_at"))
    rows, seen = [], set()
    for entity_id, features, created_at in logged.iterator(chunk_size=2000):
        if entity_id in seen:
            continue
        seen.add(entity_id)
        rows.append({**features, recipe.target_column: labels[entity_id], PREDICTION_TIME_COLUMN: created_at})
    if not rows:
        raise TrainingFailed(MSG_NO_PREDICTIONS.format(days=recipe.window_days))
    return pd.DataFrame.from_records(rows)


# --- checks, types and the split -----------------------------------------------------------------


def inputs_for(signature: dict[str, Any] | None, frame: pd.DataFrame, recipe: TrainingRecipe) -> list[dict[str, Any]]:
    """The champion's inputs; without a champion, every column but the target and split column."""
    if signature and signature.get("inputs"):
        return [{"name": c["name"], "dtype": c["dtype"]} for c in signature["inputs"]]
    from registry.sandbox import column_kind

    skip = {recipe.target_column, split_column_of(recipe)}
    return [{"name": str(c), "dtype": column_kind(frame[c])} for c in frame.columns if c not in skip]


def split_column_of(recipe: TrainingRecipe) -> str:
    if recipe.data_source == DataSource.PREDICTIONS and not recipe.split_column:
        return PREDICTION_TIME_COLUMN
    return recipe.split_column


def conform(frame: pd.DataFrame, inputs: list[dict[str, Any]], target: str) -> pd.DataFrame:
    """Columns typed as the signature says, missing values as NaN, rows without a target dropped."""
    if target not in frame.columns:
        raise TrainingFailed(MSG_TARGET_MISSING.format(target=target, columns=", ".join(map(str, frame.columns[:30]))))
    missing = [c["name"] for c in inputs if c["name"] not in frame.columns]
    if missing:
        raise TrainingFailed(MSG_INPUTS_MISSING.format(columns=", ".join(missing[:20])))
    frame = frame[frame[target].notna()].copy()
    if frame.empty:
        raise TrainingFailed(MSG_TARGET_EMPTY.format(target=target))
    for column in inputs:
        frame[column["name"]] = _typed(frame[column["name"]], column["dtype"])
    return frame


def _typed(series: pd.Series, dtype: str) -> pd.Series:
    if dtype in ("integer", "float"):
        numbers = pd.to_numeric(series, errors="coerce")
        return numbers.astype("int64") if dtype == "integer" and numbers.notna().all() else numbers.astype(float)
    if dtype == "boolean":
        return series.astype(bool) if series.notna().all() else series
    return series.astype(str).where(series.notna(), np.nan).astype(object)


def time_split(frame: pd.DataFrame, recipe: TrainingRecipe) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Training rows before the cutoff (or all but the latest fraction), held-out rows after."""
    column = split_column_of(recipe)
    if column:
        if column not in frame.columns:
            raise TrainingFailed(MSG_SPLIT_MISSING.format(column=column))
        times = pd.to_datetime(frame[column], errors="coerce", utc=True)
        if times.isna().all():
            raise TrainingFailed(MSG_SPLIT_NOT_TIME.format(column=column))
        frame = frame.assign(_time=times).sort_values("_time", kind="stable").drop(columns="_time")
        if recipe.split_cutoff is not None:
            late = times.loc[frame.index] >= pd.Timestamp(recipe.split_cutoff)
            how = f"rows with {column} at or after {recipe.split_cutoff:%Y-%m-%d %H:%M} held out"
            return _checked(frame[~late], frame[late], how)
    how = (f"the latest {recipe.holdout_fraction:.0%} of rows by {column} held out" if column
           else f"the last {recipe.holdout_fraction:.0%} of rows (file order) held out")
    cut = len(frame) - math.ceil(len(frame) * recipe.holdout_fraction)
    return _checked(frame.iloc[:cut], frame.iloc[cut:], how)


def _checked(train: pd.DataFrame, holdout: pd.DataFrame, how: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    if len(train) < MIN_TRAINING_ROWS or len(holdout) < MIN_HOLDOUT_ROWS:
        raise TrainingFailed(MSG_TOO_FEW.format(train=len(train), holdout=len(holdout), min_train=MIN_TRAINING_ROWS,
                                                min_holdout=MIN_HOLDOUT_ROWS))
    return train, holdout, how


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the exact rows used (training and held out), as CSV."""
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def prepare(recipe: TrainingRecipe, signature: dict[str, Any] | None, workdir: Path) -> Prepared:
    rows, source = load_rows(recipe, workdir)
    inputs = inputs_for(signature, rows, recipe)
    recipes.split_inputs(inputs)
    frame = conform(rows, inputs, recipe.target_column)
    train, holdout, how = time_split(frame, recipe)
    columns = [c["name"] for c in inputs] + [recipe.target_column]
    train, holdout = train[columns].reset_index(drop=True), holdout[columns].reset_index(drop=True)
    description = f"{len(train)} training rows from {source}; {len(holdout)} rows held out ({how})."
    return Prepared(train, holdout, inputs, fingerprint(pd.concat([train, holdout])), description)


# --- fitting -----------------------------------------------------------------------------------------


def fit(recipe: TrainingRecipe, task: str, prepared: Prepared) -> Any:
    """Train the recipe's estimator or call its registered function on the training rows."""
    target, columns = recipe.target_column, [c["name"] for c in prepared.inputs]
    y = prepared.train[target]
    if task != "regression" and y.nunique() < 2:
        raise TrainingFailed(MSG_ONE_CLASS.format(value=y.iloc[0]))
    try:
        if recipe.kind == RecipeKind.FUNCTION:
            function = recipes.training_function(recipe.function_path)
            params = recipes.check_function_parameters(recipe.hyperparameters)
            model = function(prepared.train.copy(), target=target, task=task, inputs=prepared.inputs, params=params)
        else:
            recipes.check_hyperparameters(recipe.estimator, task, recipe.hyperparameters)
            final = recipes.build_estimator(recipe.estimator, task, recipe.hyperparameters)
            model = recipes.build_pipeline(prepared.inputs, final).fit(prepared.train[columns], y)
    except recipes.RecipeInvalid as error:
        raise TrainingFailed(error.message) from None
    except (ValueError, TypeError, KeyError, ArithmeticError) as error:  # what fit raises on bad settings/data
        raise TrainingFailed(MSG_FIT_FAILED.format(error=str(error)[:500] or type(error).__name__)) from None
    if not hasattr(model, "predict"):
        raise TrainingFailed(MSG_NO_PREDICT.format(kind=type(model).__name__))
    return model

"""What a recipe may train: allow-listed scikit-learn estimators with checked hyperparameters,
preprocessing built from a signature, and training functions the deployment registered in settings.

Nothing here runs code a person typed: estimators come from a fixed table, hyperparameters
are plain JSON values checked against the estimator's own parameters and constraints, and a
training function is imported only when its dotted path is in `settings.RETRAINING_FUNCTIONS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from opsportal.errors import DomainError

CLASSIFIERS = {
    "LogisticRegression": "sklearn.linear_model.LogisticRegression",
    "RandomForestClassifier": "sklearn.ensemble.RandomForestClassifier",
    "GradientBoostingClassifier": "sklearn.ensemble.GradientBoostingClassifier",
    "HistGradientBoostingClassifier": "sklearn.ensemble.HistGradientBoostingClassifier",
}
REGRESSORS = {
    "Ridge": "sklearn.linear_model.Ridge",
    "RandomForestRegressor": "sklearn.ensemble.RandomForestRegressor",
    "GradientBoostingRegressor": "sklearn.ensemble.GradientBoostingRegressor",
    "HistGradientBoostingRegressor": "sklearn.ensemble.HistGradientBoostingRegressor",
}
# Trees are stored with types skops does not trust by default; an admin must trust them once.
TREE_ESTIMATORS = {name for name in {**CLASSIFIERS, **REGRESSORS} if "Forest" in name or "Boosting" in name}
# Parameters OpsPortal sets itself: the worker's CPU share and its log are not the recipe's to choose.
RESERVED_PARAMETERS = {"n_jobs", "verbose", "warm_start"}
# Bounds that keep one run within the training queue's time and memory budget.
UPPER_BOUNDS = {"n_estimators": 2000, "max_iter": 100_000, "max_depth": 200, "max_leaf_nodes": 100_000}
NUMERIC_DTYPES = ("integer", "float", "boolean")

MSG_ESTIMATOR = "Choose one of: {names}."
MSG_UNKNOWN_PARAMETER = "{estimator} has no hyperparameter {name!r}. Known: {known}."
MSG_RESERVED = "{name!r} is set by OpsPortal and cannot be part of a recipe."
MSG_PLAIN_VALUE = "{name!r} must be a number, text, true/false or null."
MSG_TOO_BIG = "{name!r} may be at most {limit} in a retraining recipe."
MSG_HYPERPARAMETERS_OBJECT = "Hyperparameters must be a JSON object of names to values."
MSG_FUNCTION_NOT_ALLOWED = "This training function is not registered in the RETRAINING_FUNCTIONS setting."
MSG_FUNCTION_BROKEN = "The registered training function {path!r} cannot be imported: {error}"
MSG_DATETIME_INPUT = "Column {name!r} is a date/time: the built-in recipe cannot use it as an input."
MSG_NO_INPUTS = "There are no input columns to train on."


class RecipeInvalid(DomainError):
    """A recipe's estimator, hyperparameters or function are not acceptable."""

    def __init__(self, message: str, field: str):
        super().__init__("validation_error", message, details={field: [message]})


def estimators_for(task: str) -> dict[str, str]:
    return REGRESSORS if task == "regression" else CLASSIFIERS


def estimator_class(name: str, task: str) -> type:
    allowed = estimators_for(task)
    if name not in allowed:
        raise RecipeInvalid(MSG_ESTIMATOR.format(names=", ".join(allowed)), "estimator")
    return import_string(allowed[name])


def _check_value(name: str, value: Any) -> None:
    plain = value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))
    if not plain:
        raise RecipeInvalid(MSG_PLAIN_VALUE.format(name=name), "hyperparameters")
    limit = UPPER_BOUNDS.get(name)
    if limit is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
        raise RecipeInvalid(MSG_TOO_BIG.format(name=name, limit=limit), "hyperparameters")


def check_hyperparameters(estimator: str, task: str, hyperparameters: Any) -> dict[str, Any]:
    """The hyperparameters if the estimator accepts them; RecipeInvalid with its own words otherwise."""
    if not isinstance(hyperparameters, dict):
        raise RecipeInvalid(MSG_HYPERPARAMETERS_OBJECT, "hyperparameters")
    cls = estimator_class(estimator, task)
    known = sorted(set(cls().get_params()) - RESERVED_PARAMETERS)
    for name, value in hyperparameters.items():
        if name in RESERVED_PARAMETERS:
            raise RecipeInvalid(MSG_RESERVED.format(name=name), "hyperparameters")
        if name not in known:
            message = MSG_UNKNOWN_PARAMETER.format(estimator=estimator, name=name, known=", ".join(known))
            raise RecipeInvalid(message, "hyperparameters")
        _check_value(name, value)
    _validate_with_sklearn(cls(**hyperparameters))
    return hyperparameters


def _validate_with_sklearn(instance: Any) -> None:
    """scikit-learn's own type and range constraints (the check `fit` starts with), run before any data."""
    validate = getattr(instance, "_validate_params", None)
    if validate is None:  # an estimator without declared constraints: fit will tell
        return
    try:
        validate()
    except (ValueError, TypeError) as error:
        raise RecipeInvalid(str(error), "hyperparameters") from None


def build_estimator(estimator: str, task: str, hyperparameters: dict[str, Any]) -> Any:
    # n_jobs stays unset (reserved): scikit-learn's default is one core, and the worker shares the machine.
    return estimator_class(estimator, task)(**hyperparameters)


def build_pipeline(inputs: list[dict[str, Any]], final: Any) -> Any:
    """Numeric columns imputed (median) and scaled; text columns imputed (most frequent) and one-hot
    encoded, ignoring categories unseen in training; then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = split_inputs(inputs)
    parts = []
    if numeric:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                                       ("scale", StandardScaler())]), numeric))
    if categorical:
        parts.append(("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                       ("onehot", OneHotEncoder(handle_unknown="ignore"))]), categorical))
    return Pipeline([("prepare", ColumnTransformer(parts)), ("model", final)])


def split_inputs(inputs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for column in inputs:
        if column["dtype"] == "datetime":
            raise RecipeInvalid(MSG_DATETIME_INPUT.format(name=column["name"]), "estimator")
        (numeric if column["dtype"] in NUMERIC_DTYPES else categorical).append(column["name"])
    if not numeric and not categorical:
        raise RecipeInvalid(MSG_NO_INPUTS, "estimator")
    return numeric, categorical


# --- registered training functions ----------------------------------------------------------


def registered_functions() -> list[str]:
    return list(settings.RETRAINING_FUNCTIONS)


def training_function(path: str) -> Callable[..., Any]:
    """The callable behind an allow-listed dotted path. Anything else is refused before import."""
    if path not in registered_functions():
        raise RecipeInvalid(MSG_FUNCTION_NOT_ALLOWED, "function_path")
    try:
        function = import_string(path)
    except ImportError as error:
        raise RecipeInvalid(MSG_FUNCTION_BROKEN.format(path=path, error=error), "function_path") from None
    if not callable(function):
        raise RecipeInvalid(MSG_FUNCTION_BROKEN.format(path=path, error="not callable"), "function_path")
    return function


def check_function_parameters(parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, dict):
        raise RecipeInvalid(MSG_HYPERPARAMETERS_OBJECT, "hyperparameters")
    for name, value in parameters.items():
        _check_value(str(name), value)
    return parameters

"""Per-row explanations in the input's own columns.

Exact for linear models (a linear or logistic model after any preprocessing):
the model's score is intercept + Σ coef·z over the transformed features z, so each
transformed feature contributes coef·(z - z̄), where z̄ is the average over the
version's reference data; contributions of the features an input column produced
(e.g. its one-hot columns) add up to that column's contribution. Together with the
base value they sum exactly to the row's score (log-odds for classifiers).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from opsportal.errors import DomainError
from registry import artifacts, selectors
from registry.models import ModelVersion
from registry.sandbox import read_dataset

METHOD = "exact linear contributions relative to the reference average"
MSG_NOT_LINEAR = ("Explanations are computed exactly for linear models; this version's final step is {name}. "
                  "Its global feature importance is on the version page.")
_lock = threading.Lock()
_prepared: dict[tuple[int, str], dict[str, Any]] = {}


class ExplainError(DomainError):
    pass


def _split(model: Any) -> tuple[Any, Any]:
    if hasattr(model, "steps"):
        return (model[:-1] if len(model.steps) > 1 else None), model.steps[-1][1]
    return None, model


def _source_columns(output_names: list[str], inputs: list[str]) -> list[str]:
    """Which input column each transformed feature came from (longest matching name wins)."""
    by_length = sorted(inputs, key=len, reverse=True)
    owners = []
    for name in output_names:
        feature = name.split("__", 1)[-1]
        owners.append(next((c for c in by_length if feature == c or feature.startswith(c + "_")), feature))
    return owners


def _transform(pre: Any, frame: pd.DataFrame) -> np.ndarray:
    matrix = pre.transform(frame) if pre is not None else frame.to_numpy(dtype=float)
    return np.asarray(matrix.todense() if hasattr(matrix, "todense") else matrix, dtype=float)


def _prepare(version: ModelVersion) -> dict[str, Any]:
    import skops.io as sio

    with tempfile.TemporaryDirectory(prefix="opsportal-explain-") as tmp:
        with artifacts.blob_local_copy(version.artifact_key, version.artifact_sha256, Path(tmp)) as path:
            model = sio.load(path, trusted=selectors.trusted_type_names())
        with artifacts.blob_local_copy(version.reference_key, version.reference_sha256, Path(tmp)) as path:
            reference = read_dataset(str(path), version.reference_format)
    pre, final = _split(model)
    if not hasattr(final, "coef_") or not hasattr(final, "intercept_"):
        raise ExplainError("not_explainable", MSG_NOT_LINEAR.format(name=type(final).__name__), status=422)
    columns = version.input_columns
    names = list(pre.get_feature_names_out()) if pre is not None else columns
    return {"pre": pre, "coef": np.atleast_2d(final.coef_), "intercept": np.atleast_1d(final.intercept_),
            "mean": _transform(pre, reference[columns]).mean(axis=0), "owners": _source_columns(names, columns),
            "classes": [str(c) for c in getattr(final, "classes_", [])]}


def _prepared_for(version: ModelVersion) -> dict[str, Any]:
    key = (version.pk, version.artifact_sha256)
    with _lock:
        if key in _prepared:
            return _prepared[key]
    prepared = _prepare(version)
    with _lock:
        _prepared[key] = prepared
    return prepared


def explain(version: ModelVersion, frame: pd.DataFrame, labels: list[Any]) -> list[dict[str, Any]]:
    """One explanation per row: base value, contribution per input column, and the score they add up to."""
    prepared = _prepared_for(version)
    z = _transform(prepared["pre"], frame[version.input_columns])
    coef, intercept, classes = prepared["coef"], prepared["intercept"], prepared["classes"]
    explanations = []
    for row, label in enumerate(labels):
        k = classes.index(str(label)) if coef.shape[0] > 1 and str(label) in classes else 0
        parts = coef[k] * (z[row] - prepared["mean"])
        per_column: dict[str, float] = {}
        for owner, value in zip(prepared["owners"], parts, strict=True):
            per_column[owner] = per_column.get(owner, 0.0) + float(value)
        base = float(intercept[k] + coef[k] @ prepared["mean"])
        target = classes[k] if coef.shape[0] > 1 else (classes[-1] if classes else None)
        explanations.append({
            "method": METHOD, "explains": f"log-odds of {target!r}" if target is not None else "the predicted value",
            "base_value": round(base, 6), "score": round(base + float(parts.sum()), 6),
            "contributions": dict(sorted(((c, round(v, 6)) for c, v in per_column.items()),
                                         key=lambda item: -abs(item[1]))),
        })
    return explanations


def clear() -> None:
    with _lock:
        _prepared.clear()

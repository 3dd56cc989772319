"""Training functions shipped with OpsPortal, registered by default in `RETRAINING_FUNCTIONS`.

A deployment registers its own the same way: a module-level callable in an installed package,

    def train(frame: pandas.DataFrame, *, target: str, task: str, inputs: list[dict], params: dict) -> estimator

that returns a fitted object with `predict` (and `predict_proba` for classifiers) taking the
input columns by name. `frame` holds the training rows only (the held-out rows are kept back
for the comparison with the champion); `inputs` is the champion's signature; `params` are the
recipe's JSON parameters.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from retraining.recipes import build_pipeline


def balanced_logistic_regression(
    frame: pd.DataFrame, *, target: str, task: str, inputs: list[dict[str, Any]], params: dict[str, Any]
) -> Any:
    """Logistic regression whose classes weigh the same however rare one of them is (churn, fraud)."""
    from sklearn.linear_model import LogisticRegression

    if task == "regression":
        raise ValueError("balanced_logistic_regression trains classifiers only.")
    estimator = LogisticRegression(class_weight="balanced", max_iter=int(params.get("max_iter", 1000)),
                                   C=float(params.get("C", 1.0)))
    columns = [column["name"] for column in inputs]
    return build_pipeline(inputs, estimator).fit(frame[columns], frame[target])

"""Model performance: realized once labels arrive (scikit-learn's metrics on labels joined to logged
predictions by entity id), estimated before that from the model's own probabilities (confidence-based
performance estimation, as NannyML's CBPE), and service health from the prediction log."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics

CALIBRATION_BINS = 10
MIN_ROWS = 1


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _calibration(y_true: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """Reliability curve with uniform bins (sklearn.calibration.calibration_curve) and its expected error."""
    from sklearn.calibration import calibration_curve

    prob_true, prob_pred = calibration_curve(y_true, score, n_bins=CALIBRATION_BINS, strategy="uniform")
    bins = np.clip(np.searchsorted(np.linspace(0, 1, CALIBRATION_BINS + 1)[1:-1], score, side="right"),
                   0, CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    weights = counts[counts > 0] / counts.sum()
    return {"observed": prob_true.tolist(), "predicted": prob_pred.tolist(),
            "ece": float(np.sum(weights * np.abs(prob_true - prob_pred)))}


def binary_metrics(y_true: list[Any], y_pred: list[Any], score: list[float] | None,
                   classes: list[str]) -> dict[str, Any]:
    """Realized metrics of a binary classifier; the positive class is the second one (scikit-learn's order)."""
    positive = str(classes[1])
    truth = np.array([str(v) == positive for v in y_true], dtype=int)
    predicted = np.array([str(v) == positive for v in y_pred], dtype=int)
    result: dict[str, Any] = {
        "rows": len(truth),
        "accuracy": float(metrics.accuracy_score(truth, predicted)),
        "precision": float(metrics.precision_score(truth, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(truth, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(truth, predicted, zero_division=0)),
    }
    if score is not None and len(set(truth.tolist())) == 2:
        probability = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
        result["auc"] = float(metrics.roc_auc_score(truth, probability))
        result["log_loss"] = float(metrics.log_loss(truth, probability, labels=[0, 1]))
        result["calibration"] = _calibration(truth, probability)
    return result


def multiclass_metrics(y_true: list[Any], y_pred: list[Any], probabilities: np.ndarray | None,
                       classes: list[str]) -> dict[str, Any]:
    truth = [str(v) for v in y_true]
    predicted = [str(v) for v in y_pred]
    labels = [str(c) for c in classes]
    result: dict[str, Any] = {
        "rows": len(truth),
        "accuracy": float(metrics.accuracy_score(truth, predicted)),
        "precision": float(metrics.precision_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "recall": float(metrics.recall_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "f1": float(metrics.f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
    }
    if probabilities is not None and len(set(truth)) > 1:
        result["log_loss"] = float(metrics.log_loss(truth, probabilities, labels=labels))
        if set(truth) == set(labels):
            result["auc"] = float(metrics.roc_auc_score(truth, probabilities, labels=labels, multi_class="ovr"))
    return result


def regression_metrics(y_true: list[Any], y_pred: list[Any]) -> dict[str, Any]:
    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    result = {"rows": len(truth), "mae": float(metrics.mean_absolute_error(truth, predicted)),
              "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted)))}
    if len(truth) > 1:
        result["r2"] = _finite(metrics.r2_score(truth, predicted))
    return result


# --- estimated performance (no labels needed) ------------------------------------------------------


def estimated_binary(score: list[float], threshold: float = 0.5) -> dict[str, Any]:
    """Expected confusion matrix when the probabilities are calibrated (CBPE).

    A row predicted positive with probability p is a true positive with chance p
    and a false positive with chance 1 - p; summing these chances gives the
    expected counts, and the metrics follow. The expected ROC curve sweeps the
    threshold over the sorted scores with the same expected counts.
    """
    p = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
    if p.size < MIN_ROWS:
        return {}
    positive = p >= threshold
    tp, fp = float(p[positive].sum()), float((1 - p[positive]).sum())
    fn, tn = float(p[~positive].sum()), float((1 - p[~positive]).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    result = {"rows": int(p.size), "accuracy": (tp + tn) / p.size, "precision": precision, "recall": recall,
              "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
    auc = _expected_auc(p)
    if auc is not None:
        result["auc"] = auc
    return result


def _expected_auc(p: np.ndarray) -> float | None:
    order = np.argsort(-p, kind="stable")
    ordered = p[order]
    # one point per distinct threshold, as roc_curve does with ties
    last_of_tie = np.r_[np.diff(ordered) != 0, True]
    tps = np.cumsum(ordered)[last_of_tie]
    fps = np.cumsum(1 - ordered)[last_of_tie]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.trapezoid(tpr, fpr))


def estimated_multiclass(probabilities: np.ndarray) -> dict[str, Any]:
    if probabilities.size == 0:
        return {}
    return {"rows": int(probabilities.shape[0]), "accuracy": float(probabilities.max(axis=1).mean())}


# --- service health ---------------------------------------------------------------------------------


def service_health(latencies_ms: list[float], *, failed: int = 0, hours: float | None = None) -> dict[str, Any]:
    """Volume, error rate and latency percentiles of one version over a window."""
    values = np.asarray([v for v in latencies_ms if v is not None], dtype=float)
    total = int(values.size) + failed
    health: dict[str, Any] = {"volume": int(values.size), "failed": failed,
                              "error_rate": failed / total if total else 0.0}
    if hours:
        health["per_hour"] = values.size / hours
    if values.size:
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        health.update({"latency_p50_ms": float(p50), "latency_p95_ms": float(p95), "latency_p99_ms": float(p99)})
    return health

"""Prediction-log rows scored by the real model, and labels, for monitoring tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.utils import timezone

from feedback.models import Label
from monitoring import services
from registry.models import ModelVersion
from registry.tests.fixtures import CATEGORICAL, NUMERIC
from scoring.models import PredictionLog

FEATURES = NUMERIC + CATEGORICAL


def log_predictions(version: ModelVersion, frame: pd.DataFrame, *, at: datetime | None = None,
                    prefix: str = "c", latency: float = 4.0) -> list[PredictionLog]:
    """Score `frame` with the version's model and write what the real-time API would have logged."""
    features = frame[FEATURES]
    scores, probabilities, labels = services.predicted_values(version, features)
    classes = [str(c) for c in version.signature["output"]["classes"]]
    at = at or timezone.now() - timedelta(hours=1)
    rng = np.random.default_rng(5)
    rows = [
        PredictionLog(created_at=at, model_id=version.model_id, version=version, request_id=uuid.uuid4(),
                      entity_id=f"{prefix}{i}", features=_plain(record), prediction=str(labels[i]),
                      probabilities=dict(zip(classes, map(float, probabilities[i]), strict=True)),
                      score=float(scores[i]), latency_ms=float(latency + rng.exponential(2.0)))
        for i, record in enumerate(features.to_dict("records"))
    ]
    return PredictionLog.objects.bulk_create(rows)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}


def add_labels(version: ModelVersion, frame: pd.DataFrame, *, prefix: str = "c") -> None:
    Label.objects.bulk_create([Label(model_id=version.model_id, entity_id=f"{prefix}{i}", label=value,
                                     observed_at=timezone.now()) for i, value in enumerate(frame["Churn"])])

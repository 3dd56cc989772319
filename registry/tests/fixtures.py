"""Real models and data for registry tests, generated in code (no network, no shared data needed)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from registry import services
from registry.models import ModelVersion, RegisteredModel

NUMERIC = ["tenure", "MonthlyCharges", "SeniorCitizen"]
CATEGORICAL = ["Contract", "PaymentMethod"]


def churn_frame(rows: int = 600, seed: int = 7) -> pd.DataFrame:
    """Telco-like customers whose churn depends on tenure, contract and charges."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.55, 0.25, 0.2])
    frame = pd.DataFrame({
        "tenure": rng.integers(0, 72, rows),
        "MonthlyCharges": rng.uniform(18, 120, rows).round(2),
        "SeniorCitizen": rng.integers(0, 2, rows),
        "Contract": contract,
        "PaymentMethod": rng.choice(["Electronic check", "Mailed check", "Bank transfer", "Credit card"], rows),
    })
    logit = 0.8 - 0.05 * frame["tenure"] + 0.02 * frame["MonthlyCharges"] - 1.5 * (contract != "Month-to-month")
    frame["Churn"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    return frame


def churn_pipeline(frame: pd.DataFrame | None = None) -> Pipeline:
    frame = churn_frame() if frame is None else frame
    features = ColumnTransformer([("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"),
                                                                         CATEGORICAL)])
    model = Pipeline([("features", features), ("classifier", LogisticRegression(max_iter=500))])
    return model.fit(frame[NUMERIC + CATEGORICAL], frame["Churn"])


def regression_pipeline() -> Pipeline:
    frame = churn_frame()
    features = ColumnTransformer([("num", StandardScaler(), ["tenure", "SeniorCitizen"]),
                                  ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    model = Pipeline([("features", features), ("regressor", LinearRegression())])
    return model.fit(frame[["tenure", "SeniorCitizen", *CATEGORICAL]], frame["MonthlyCharges"])


def skops_bytes(model: Any) -> bytes:
    return sio.dumps(model)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def upload(data: bytes, name: str = "model.skops") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.fixture
def churn_model(data_scientist: Any) -> RegisteredModel:
    return services.model_create(user=data_scientist, name="churn", task="binary_classification",
                                 title="Customer churn", tags=["retention"])


@pytest.fixture
def register(data_scientist: Any, churn_model: RegisteredModel) -> Callable[..., ModelVersion]:
    """Register a version through the service (as the API does), without validating it yet."""

    def make(model: Any = None, *, reference: pd.DataFrame | None = None, fmt: str = "skops", data: bytes | None = None,
             target: str = "Churn", on: RegisteredModel | None = None, **fields: Any) -> ModelVersion:
        frame = churn_frame() if reference is None else reference
        artifact = data if data is not None else skops_bytes(model if model is not None else churn_pipeline())
        spec = services.VersionUpload(artifact=upload(artifact), format=fmt,
                                      reference=upload(csv_bytes(frame), "reference.csv"), target_column=target,
                                      **fields)
        return services.version_register(model=on or churn_model, user=data_scientist, upload=spec)

    return make


@pytest.fixture
def validate() -> Callable[[ModelVersion], ModelVersion]:
    """Run the real validation (sandbox subprocess included) inline, as the worker would."""

    def run(version: ModelVersion) -> ModelVersion:
        services.version_validate(version_id=version.pk)
        version.refresh_from_db()
        return version

    return run


@pytest.fixture
def ready_version(register: Callable[..., ModelVersion], validate: Callable[..., ModelVersion]) -> ModelVersion:
    version = validate(register(metrics={"auc": 0.84}, description="Logistic regression on tenure and contract."))
    assert version.status == "ready", version.status_reason
    return version


@pytest.fixture
def tmp_file(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write

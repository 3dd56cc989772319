"""Real models and data for registry tests, generated in code (no network, no shared data needed)."""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.conf import settings
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


@functools.cache
def standard_artifact(nth: int = 0) -> bytes:
    """The standard churn pipeline, saved once per test process: the same bytes each time, so its
    validation is remembered. Each `nth` is a separate save (skops names arrays by object id), for
    tests that register the standard pipeline more than once on one model."""
    return skops_bytes(churn_pipeline())


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

    standard = itertools.count()

    def make(model: Any = None, *, reference: pd.DataFrame | None = None, fmt: str = "skops", data: bytes | None = None,
             target: str = "Churn", on: RegisteredModel | None = None, **fields: Any) -> ModelVersion:
        frame = churn_frame() if reference is None else reference
        artifact = data if data is not None else skops_bytes(model) if model is not None else standard_artifact(
            next(standard))
        spec = services.VersionUpload(artifact=upload(artifact), format=fmt,
                                      reference=upload(csv_bytes(frame), "reference.csv"), target_column=target,
                                      **fields)
        return services.version_register(model=on or churn_model, user=data_scientist, upload=spec)

    return make


# Sandbox outcomes of version validation in this test process, by everything the sandbox reads.
_OUTCOMES: dict[str, tuple[dict[str, Any], bytes | None]] = {}


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def remembered_sandbox(real: Callable[[dict[str, Any], Path], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The validation sandbox, run once per distinct input in a test process.

    The outcome depends only on the artifact's and reference's bytes, the job's fields and the
    sandbox limits, so a repeat (most tests validate the same pipeline to set up a ready version)
    gets the first run's result and ONNX twin. Other sandbox jobs (gate and retraining
    evaluations) always run.
    """

    def run(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
        if "onnx_out_path" not in job or "mode" in job:
            return real(job, workdir)
        fields = {k: v for k, v in job.items() if k not in ("artifact_path", "reference_path", "onnx_out_path")}
        key = json.dumps([fields, _file_digest(job["artifact_path"]), _file_digest(job["reference_path"]),
                          settings.SANDBOX_MEMORY_MB, settings.SANDBOX_TIMEOUT_SECONDS], sort_keys=True)
        twin = Path(job["onnx_out_path"])
        if key not in _OUTCOMES:
            result = real(job, workdir)
            _OUTCOMES[key] = (copy.deepcopy(result), twin.read_bytes() if twin.exists() else None)
            return result
        result, twin_bytes = _OUTCOMES[key]
        if twin_bytes is not None:
            twin.write_bytes(twin_bytes)
        return copy.deepcopy(result)

    return run


@pytest.fixture
def validate(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModelVersion], ModelVersion]:
    """Run the real validation inline, as the worker would: the stored files are copied out and
    their hashes checked each time, and the sandbox subprocess runs once per distinct input."""
    monkeypatch.setattr(services, "run_sandbox", remembered_sandbox(services.run_sandbox))

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

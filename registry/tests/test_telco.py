"""Acceptance: the IBM Telco churn table, dirty blanks included, registered as a real pipeline."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from conftest import shared_dataset
from registry import services
from registry.tests.fixtures import csv_bytes, skops_bytes, upload

pytestmark = pytest.mark.django_db


def telco() -> pd.DataFrame:
    frame = pd.read_csv(shared_dataset("telco_churn.csv"))
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")  # blanks become missing
    return frame.drop(columns=["customerID"])


def telco_pipeline(frame: pd.DataFrame) -> Pipeline:
    features = frame.drop(columns=["Churn"])
    categorical = [c for c in features.columns if features[c].dtype == object]
    numeric = [c for c in features.columns if c not in categorical]
    prepare = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=1000))]).fit(features, frame["Churn"])


def test_it_validates_the_telco_pipeline_with_an_onnx_twin(churn_model, data_scientist, validate):
    frame = telco()
    spec = services.VersionUpload(
        artifact=upload(skops_bytes(telco_pipeline(frame))),
        format="skops",
        reference=upload(csv_bytes(frame), "telco.csv"),
        target_column="Churn",
    )
    version = validate(services.version_register(model=churn_model, user=data_scientist, upload=spec))
    assert version.status == "ready", version.status_reason
    assert version.reference_rows == 7043
    assert len(version.signature["inputs"]) == 19
    total = next(c for c in version.signature["inputs"] if c["name"] == "TotalCharges")
    assert total["dtype"] == "float" and total["nullable"] is True
    assert version.engine == "onnx"
    assert (
        version.validation["onnx_timings"]["onnx"]["single_row_ms"]
        < version.validation["onnx_timings"]["sklearn"]["single_row_ms"]
    )
    assert {row["feature"] for row in version.feature_importance[:5]} & {"tenure", "Contract", "TotalCharges"}

"""Runs inside var/bench/mlflow-venv (not the portal's venv): save the fitted pipeline as an MLflow model.

    python _mlflow_model.py <pipeline.joblib> <features.csv> <model_dir>

The pipeline is the very object the portal registered (fitted once by realtime.py, handed over
with joblib: same scikit-learn version on both sides). The signature is inferred from the
training features, as `mlflow.sklearn.log_model(..., input_example=...)` users get, so MLflow
checks request columns and types as OpsPortal does. Serialization is MLflow's default (skops in
MLflow 3); it matters only when the server loads the model, never per request.
"""

from __future__ import annotations

import sys

import joblib
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature


def main(pipeline_path: str, features_path: str, model_dir: str) -> None:
    model = joblib.load(pipeline_path)
    features = pd.read_csv(features_path)
    features["TotalCharges"] = pd.to_numeric(features["TotalCharges"], errors="coerce")
    signature = infer_signature(features, model.predict(features))
    # MLflow 3 saves sklearn models with skops by default and refuses to save one it could not load back;
    # OneHotEncoder's `dtype` parameter is a numpy.dtype, which skops does not trust by default.
    mlflow.sklearn.save_model(model, model_dir, signature=signature, skops_trusted_types=["numpy.dtype"])
    print(f"saved {type(model).__name__} to {model_dir} with mlflow {mlflow.__version__}")


if __name__ == "__main__":
    main(*sys.argv[1:4])

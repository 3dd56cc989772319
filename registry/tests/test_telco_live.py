"""Acceptance with real services: the Telco pipeline through the API and through the Python client,
validated by a real worker, predicting what the original object predicts."""

from __future__ import annotations

import numpy as np
import pytest
from opsportal_client import Client

from accounts.services import token_create
from conftest import wait_for
from registry.models import ModelVersion
from registry.tests.fixtures import csv_bytes, skops_bytes, upload
from registry.tests.test_telco import telco, telco_pipeline

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def token(data_scientist) -> str:
    return token_create(user=data_scientist, name="ci", expires_in_days=1)[1]


def rows_of(frame):
    sample = frame.drop(columns=["Churn"]).iloc[[0, 1, 2, 488, 753]]  # 488 and 753 have a blank TotalCharges
    return sample, sample.astype(object).where(sample.notna(), None).to_dict("records")


def assert_predicts_like(client, number, model, frame):
    sample, records = rows_of(frame)
    response = client.post(f"/api/v1/models/telco-churn/versions/{number}/predict", {"rows": records}, format="json")
    assert response.status_code == 200, response.json()
    got = [p["Yes"] for p in response.json()["probabilities"]]
    assert np.allclose(got, model.predict_proba(sample)[:, 1], atol=1e-5)


def test_it_validates_a_telco_pipeline_uploaded_through_the_api(celery_worker_process, api_client_for,
                                                                 data_scientist):
    frame = telco()
    model = telco_pipeline(frame)
    client = api_client_for(data_scientist)
    client.post("/api/v1/models/", {"name": "telco-churn", "task": "binary_classification"}, format="json")
    response = client.post("/api/v1/models/telco-churn/versions/", {
        "artifact": upload(skops_bytes(model)), "reference_data": upload(csv_bytes(frame), "telco.csv"),
        "target_column": "Churn"}, format="multipart")
    assert response.status_code == 201
    version = wait_for(lambda: ModelVersion.objects.filter(status__in=["ready", "failed"]).first(), timeout=120)
    assert version.status == "ready", version.status_reason
    assert version.engine == "onnx"
    assert_predicts_like(client, version.number, model, frame)


def test_it_validates_a_telco_pipeline_pushed_with_the_client(celery_worker_process, live_server, token,
                                                               api_client_for, data_scientist):
    frame = telco()
    model = telco_pipeline(frame)
    version = Client(live_server.url, token, progress=False).register(
        model, name="telco-churn", reference=frame, target_column="Churn", timeout=180)
    assert version["status"] == "ready", version["status_reason"]
    assert_predicts_like(api_client_for(data_scientist), version["number"], model, frame)

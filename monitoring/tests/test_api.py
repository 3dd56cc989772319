"""Monitoring REST API: start and read runs, the series, alerts, and the Prometheus endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from monitoring import services
from monitoring.models import AlertKind, AlertStatus, MonitoringRun, Severity
from monitoring.tests.helpers import log_predictions
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame, csv_bytes

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/models/churn/monitoring/runs/"


def test_it_queues_a_run_and_serves_its_per_feature_results(ready_version: ModelVersion, data_scientist: Any,
                                                            api_client_for: Any) -> None:
    log_predictions(ready_version, churn_frame(300, seed=51))
    client = api_client_for(data_scientist)
    created = client.post(RUNS, {}, format="json")
    assert created.status_code == 202 and created.json()["status"] == "queued"
    services.run_execute(run_id=created.json()["id"])
    body = client.get(f"/api/v1/monitoring/runs/{created.json()['id']}/").json()
    assert body["status"] == "succeeded" and body["rows_current"] == 300
    assert {f["column"] for f in body["features"]} == {"tenure", "MonthlyCharges", "SeniorCitizen", "Contract",
                                                      "PaymentMethod"}
    assert {"method", "threshold", "score", "drifted"} <= set(body["features"][0])


def test_it_accepts_an_uploaded_current_dataset(ready_version: ModelVersion, data_scientist: Any,
                                                api_client_for: Any) -> None:
    upload = SimpleUploadedFile("october.csv", csv_bytes(churn_frame(200, seed=52)))
    created = api_client_for(data_scientist).post(RUNS, {"current_data": upload, "version": 1}, format="multipart")
    assert created.status_code == 202
    run = MonitoringRun.objects.get()
    assert run.source == "upload" and run.current_filename == "october.csv" and run.version == ready_version


def test_it_hides_another_teams_model_and_runs(ready_version: ModelVersion, other_data_scientist: Any,
                                               api_client_for: Any) -> None:
    run = services.run_request(model=ready_version.model, user=None)
    client = api_client_for(other_data_scientist)
    assert client.post(RUNS, {}, format="json").status_code == 404
    assert client.get(f"/api/v1/monitoring/runs/{run.pk}/").status_code == 404
    assert client.get("/api/v1/models/churn/monitoring/").status_code == 404


def test_it_refuses_runs_from_business_owners(ready_version: ModelVersion, business_owner: Any,
                                              api_client_for: Any) -> None:
    response = api_client_for(business_owner).post(RUNS, {}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


def test_it_refuses_anonymous_calls(ready_version: ModelVersion, api_client_for: Any) -> None:
    assert api_client_for(None).post(RUNS, {}, format="json").status_code in (401, 403)


def test_it_answers_a_bad_window_with_400(ready_version: ModelVersion, data_scientist: Any,
                                          api_client_for: Any) -> None:
    response = api_client_for(data_scientist).post(
        RUNS, {"window_start": "2026-01-02T00:00:00Z", "window_end": "2026-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["message"] == services.MSG_BAD_WINDOW


def test_it_serves_the_series(ready_version: ModelVersion, data_scientist: Any, api_client_for: Any) -> None:
    log_predictions(ready_version, churn_frame(200, seed=53))
    services.run_execute(run_id=services.run_request(model=ready_version.model, user=None).pk)
    body = api_client_for(data_scientist).get("/api/v1/models/churn/monitoring/").json()
    assert len(body["runs"]) == 1 and body["runs"][0]["version"] == 1
    assert set(body["runs"][0]["features"]) >= {"tenure", "Contract"}
    assert "latency_p95_ms" in body["runs"][0]["service"]


def test_it_lists_and_acknowledges_alerts(churn_model: Any, data_scientist: Any, api_client_for: Any) -> None:
    alert, _ = services.alert_raise(model=churn_model, key="k", kind=AlertKind.DRIFT, severity=Severity.WARNING,
                                    title="drift")
    client = api_client_for(data_scientist)
    assert [a["id"] for a in client.get("/api/v1/alerts/?status=active").json()["results"]] == [alert.pk]
    assert client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()["status"] == AlertStatus.ACKNOWLEDGED
    assert client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 409


def test_it_exports_prometheus_gauges_to_the_token_holder(ready_version: ModelVersion, settings: Any) -> None:
    settings.MONITORING_METRICS_TOKEN = "scrape-secret"
    log_predictions(ready_version, churn_frame(200, seed=54))
    services.run_execute(run_id=services.run_request(model=ready_version.model, user=None).pk)
    services.alert_raise(model=ready_version.model, key="k", severity=Severity.CRITICAL, title="down")
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    text = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'opsportal_drift_share{model="churn",version="1"}' in text
    assert 'opsportal_open_alerts{model="churn",severity="critical"} 1' in text
    assert "# TYPE opsportal_latency_p95_ms gauge" in text


def test_it_refuses_metrics_without_the_token(settings: Any, data_scientist: Any) -> None:
    settings.MONITORING_METRICS_TOKEN = "scrape-secret"
    assert Client().get("/monitoring/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    client = Client()
    client.force_login(data_scientist)
    assert client.get("/monitoring/metrics").status_code == 403


def test_it_lets_signed_in_approvers_read_metrics(approver: Any) -> None:
    client = Client()
    client.force_login(approver)
    assert client.get("/monitoring/metrics").status_code == 200

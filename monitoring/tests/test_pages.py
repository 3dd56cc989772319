"""Monitoring pages: the health page at a glance (and fast with a year of runs), the run page with the
sandboxed Evidently report, the alert inbox and acknowledging from it."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from monitoring import services
from monitoring.models import AlertKind, AlertStatus, FeatureDrift, MonitoringRun, RunStatus, Severity
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame, csv_bytes

pytestmark = pytest.mark.django_db
PAYLOAD = "</script><script>fetch('/api/v1/models/').then(r=>r.text()).then(t=>parent.postMessage(t,'*'))</script>"


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def hostile_run(ready_version: ModelVersion) -> MonitoringRun:
    current = churn_frame(300, seed=41)
    current.loc[:99, "Contract"] = PAYLOAD
    run = services.run_request(model=ready_version.model, user=None, version=ready_version,
                               current_data=SimpleUploadedFile("hostile.csv", csv_bytes(current)))
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.report_key, run.report_error
    return run


def test_it_serves_the_report_sandboxed_and_never_sniffed(hostile_run: MonitoringRun, data_scientist: Any) -> None:
    response = _client(data_scientist).get(reverse("monitoring:run-report", args=[hostile_run.pk]))
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "sandbox allow-scripts"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    # Evidently writes the value raw into its script: exactly why the file never runs with the portal's origin.
    assert PAYLOAD.encode() in response.content


def test_it_frames_the_report_with_scripts_only_and_escapes_the_payload(hostile_run: MonitoringRun,
                                                                        data_scientist: Any) -> None:
    page = _client(data_scientist).get(reverse("monitoring:run", args=[hostile_run.pk])).content.decode()
    assert 'sandbox="allow-scripts"' in page and "allow-same-origin" not in page
    assert PAYLOAD not in page
    assert "&lt;/script&gt;&lt;script&gt;fetch(" in page  # shown as text in the unseen-categories column


def test_it_hides_another_teams_report(hostile_run: MonitoringRun, other_data_scientist: Any) -> None:
    client = _client(other_data_scientist)
    assert client.get(reverse("monitoring:run-report", args=[hostile_run.pk])).status_code == 404
    assert client.get(reverse("monitoring:run", args=[hostile_run.pk])).status_code == 404


def _year_of_runs(version: ModelVersion) -> None:
    now = timezone.now()
    runs = MonitoringRun.objects.bulk_create([
        MonitoringRun(model=version.model, version=version, status=RunStatus.SUCCEEDED, rows_current=1000,
                      columns_total=5, columns_drifted=day % 3, drift_share=(day % 3) / 5, dataset_drift=False,
                      prediction_drift={"method": "ks", "score": 0.3, "drifted": False},
                      performance={"labelled": 800, "rows": 1000, "overall": {"auc": 0.8, "accuracy": 0.75}},
                      estimated_performance={"auc": 0.79, "accuracy": 0.74},
                      service={"volume": 1000, "error_rate": 0.0, "latency_p50_ms": 3.0, "latency_p95_ms": 8.0,
                               "latency_p99_ms": 12.0})
        for day in range(365)])
    for day, run in enumerate(runs):
        run.created_at = now - timedelta(days=365 - day)
    MonitoringRun.objects.bulk_update(runs, ["created_at"])
    FeatureDrift.objects.bulk_create([
        FeatureDrift(run=run, column=column, kind="numerical", method="ks", method_label="K-S p_value",
                     threshold=0.05, score=0.2, drifted=(i + day) % 4 == 0, reference_rows=600, current_rows=1000)
        for day, run in enumerate(runs) for i, column in enumerate(
            ["tenure", "MonthlyCharges", "SeniorCitizen", "Contract", "PaymentMethod"])])


def test_it_renders_a_year_of_daily_runs_fast_with_few_queries(ready_version: ModelVersion, data_scientist: Any,
                                                               django_assert_max_num_queries: Any) -> None:
    _year_of_runs(ready_version)
    client = _client(data_scientist)
    url = reverse("monitoring:model", args=["churn"])
    client.get(url)  # warm template caches
    with django_assert_max_num_queries(20):
        response = client.get(url)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        client.get(url)
        timings.append(time.perf_counter() - started)
    assert response.status_code == 200
    assert b'data-chart="drift-heatmap"' in response.content and b'data-chart="performance-figure"' in response.content
    assert min(timings) < 0.3, timings


def test_it_shows_what_to_do_when_there_are_no_runs(ready_version: ModelVersion, data_scientist: Any) -> None:
    page = _client(data_scientist).get(reverse("monitoring:model", args=["churn"])).content.decode()
    assert 'data-testid="no-runs"' in page and "Run a check now" in page


def test_it_starts_a_run_from_the_health_page(ready_version: ModelVersion, data_scientist: Any) -> None:
    response = _client(data_scientist).post(reverse("monitoring:run-create", args=["churn"]))
    run = MonitoringRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("monitoring:run", args=[run.pk])
    assert run.requested_by == data_scientist and run.status == RunStatus.QUEUED


def test_it_lets_business_owners_read_but_not_start_runs(ready_version: ModelVersion, business_owner: Any) -> None:
    client = _client(business_owner)
    assert client.get(reverse("monitoring:model", args=["churn"])).status_code == 200
    assert client.post(reverse("monitoring:run-create", args=["churn"])).status_code == 403


def test_it_acknowledges_from_the_inbox(churn_model: Any, data_scientist: Any) -> None:
    alert, _ = services.alert_raise(model=churn_model, key="drift:x", kind=AlertKind.DRIFT,
                                    severity=Severity.WARNING, title="<b>tenure</b> drifted")
    client = _client(data_scientist)
    inbox = client.get(reverse("monitoring:alerts")).content.decode()
    assert "&lt;b&gt;tenure&lt;/b&gt; drifted" in inbox
    client.post(reverse("monitoring:alert-acknowledge", args=[alert.pk]), {"next": "inbox"})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == data_scientist


def test_it_puts_alerts_in_the_menu(data_scientist: Any) -> None:
    page = _client(data_scientist).get("/").content.decode()
    assert f'href="{reverse("monitoring:alerts")}"' in page

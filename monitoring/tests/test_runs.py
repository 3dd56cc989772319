"""Monitoring runs over the prediction log or an uploaded file: verdicts, data quality, performance, health."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn import metrics

from monitoring import services
from monitoring.models import MonitoringRun, ProfileStatus, RunSource, RunStatus
from monitoring.tests.helpers import add_labels, log_predictions
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame, csv_bytes

pytestmark = pytest.mark.django_db


def _run(version: ModelVersion, user: Any = None, **kwargs: Any) -> MonitoringRun:
    run = services.run_request(model=version.model, user=user, version=version, **kwargs)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_it_profiles_the_reference_data_of_a_ready_version(ready_version: ModelVersion) -> None:
    profile = services.reference_profile_compute(version_id=ready_version.pk)
    assert profile.status == ProfileStatus.READY, profile.status_reason
    columns = {c["name"]: c for c in profile.columns}
    assert set(columns) == {"tenure", "MonthlyCharges", "SeniorCitizen", "Contract", "PaymentMethod"}
    assert columns["tenure"]["kind"] == "numerical" and columns["SeniorCitizen"]["kind"] == "categorical"
    assert columns["MonthlyCharges"]["min"] >= 18 and columns["MonthlyCharges"]["max"] <= 120
    assert profile.prediction["kind"] == "numerical" and profile.rows == 600


def test_it_flags_a_shifted_feature_in_the_log_window(ready_version: ModelVersion) -> None:
    current = churn_frame(500, seed=21)
    current["tenure"] = current["tenure"] + 30
    log_predictions(ready_version, current)
    run = _run(ready_version)
    assert run.status == RunStatus.SUCCEEDED, run.status_reason
    verdicts = {f.column: f for f in run.features.all()}
    assert verdicts["tenure"].drifted and verdicts["tenure"].method == "ks"
    assert not verdicts["PaymentMethod"].drifted
    assert run.rows_current == 500 and run.columns_total == 5 and run.columns_drifted == sum(
        f.drifted for f in verdicts.values())
    assert run.prediction_drift["method"] == "ks"


def test_it_reports_unseen_categories_type_errors_and_missing_values(ready_version: ModelVersion) -> None:
    current = churn_frame(300, seed=22)
    current.loc[:59, "Contract"] = "Three year"
    current["tenure"] = current["tenure"].astype(object)
    current.loc[:9, "tenure"] = "ten"
    current.loc[:149, "MonthlyCharges"] = np.nan
    run = _run(ready_version, current_data=SimpleUploadedFile("now.csv", csv_bytes(current)))
    found = {f.column: f for f in run.features.all()}
    assert found["Contract"].unseen_categories == [["Three year", 60]]
    assert found["tenure"].type_errors == 10
    assert found["MonthlyCharges"].missing_current == pytest.approx(0.5)
    assert run.data_quality["missing_increase"] == {"value": pytest.approx(0.5), "column": "MonthlyCharges"}
    assert run.source == RunSource.UPLOAD


def test_it_measures_realized_performance_once_labels_arrive_late(ready_version: ModelVersion) -> None:
    current = churn_frame(400, seed=23)
    logged = log_predictions(ready_version, current)
    run = _run(ready_version)
    assert run.performance == {"labelled": 0, "rows": 400}
    add_labels(ready_version, current)
    assert services.performance_refresh(model=ready_version.model) == 1
    run.refresh_from_db()
    truth = (current["Churn"] == "Yes").astype(int)
    score = [row.score for row in logged]
    predicted = [int(row.prediction == "Yes") for row in logged]
    overall = run.performance["overall"]
    assert run.performance["labelled"] == 400
    assert overall["auc"] == pytest.approx(metrics.roc_auc_score(truth, score))
    assert overall["log_loss"] == pytest.approx(metrics.log_loss(truth, score))
    assert overall["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert overall["precision"] == pytest.approx(metrics.precision_score(truth, predicted))
    assert overall["recall"] == pytest.approx(metrics.recall_score(truth, predicted))
    assert overall["f1"] == pytest.approx(metrics.f1_score(truth, predicted))


def test_it_measures_performance_per_segment(ready_version: ModelVersion) -> None:
    current = churn_frame(400, seed=24)
    logged = log_predictions(ready_version, current)
    add_labels(ready_version, current)
    run = _run(ready_version)
    monthly = (current["Contract"] == "Month-to-month").to_numpy()
    truth = (current["Churn"] == "Yes").astype(int).to_numpy()[monthly]
    predicted = np.array([int(r.prediction == "Yes") for r in logged])[monthly]
    segment = run.performance["segments"]["Contract"]["Month-to-month"]
    assert segment["rows"] == monthly.sum()
    assert segment["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))


def test_it_estimates_performance_before_labels_from_probabilities(ready_version: ModelVersion) -> None:
    current = churn_frame(400, seed=25)
    logged = log_predictions(ready_version, current)
    run = _run(ready_version)
    p = np.array([row.score for row in logged])
    estimated = run.estimated_performance
    assert estimated["accuracy"] == pytest.approx(np.mean(np.maximum(p, 1 - p)))
    assert 0.5 < estimated["auc"] < 1.0


def test_it_measures_service_health_from_the_log(ready_version: ModelVersion) -> None:
    logged = log_predictions(ready_version, churn_frame(200, seed=26))
    run = _run(ready_version)
    latencies = [row.latency_ms for row in logged]
    assert run.service["volume"] == 200 and run.service["error_rate"] == 0.0
    assert run.service["latency_p95_ms"] == pytest.approx(np.percentile(latencies, 95))
    assert run.service["latency_p99_ms"] == pytest.approx(np.percentile(latencies, 99))


def test_it_succeeds_with_a_plain_reason_when_the_window_is_empty(ready_version: ModelVersion) -> None:
    run = _run(ready_version)
    assert run.status == RunStatus.SUCCEEDED and run.status_reason == services.MSG_NO_ROWS
    assert run.service["volume"] == 0


def test_it_refuses_a_window_that_ends_before_it_starts(ready_version: ModelVersion) -> None:
    from django.utils import timezone

    now = timezone.now()
    with pytest.raises(services.MonitoringError) as refused:
        services.run_request(model=ready_version.model, user=None, window_start=now, window_end=now)
    assert refused.value.message == services.MSG_BAD_WINDOW

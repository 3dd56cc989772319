"""Alert rules: defaults for production models, alerts opening once, de-duplicated, resolving, notifying."""

from __future__ import annotations

from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from accounts.models import Notification, WebhookDelivery
from monitoring import services
from monitoring.models import Alert, AlertRule, AlertStatus, MonitoringRun, RuleMetric
from monitoring.tests.helpers import log_predictions
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame
from scoring.models import PredictionLog

pytestmark = pytest.mark.django_db


def _run(version: ModelVersion, shift: int, seed: int) -> MonitoringRun:
    PredictionLog.objects.all().delete()  # each run sees only its own batch
    current = churn_frame(400, seed=seed)
    current["tenure"] = current["tenure"] + shift
    current["MonthlyCharges"] = current["MonthlyCharges"] + shift
    current["SeniorCitizen"] = (current["SeniorCitizen"] + (1 if shift else 0)).clip(0, 1)
    log_predictions(version, current)
    run = services.run_request(model=version.model, user=None, version=version)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def _drift_rule(version: ModelVersion) -> AlertRule:
    return services.rule_create(model=version.model, user=None, metric=RuleMetric.DRIFT_SHARE, comparison="gte",
                                threshold=0.5)


def test_it_opens_one_alert_per_rule_while_drift_holds(ready_version: ModelVersion, data_scientist: Any) -> None:
    rule = _drift_rule(ready_version)
    first = _run(ready_version, shift=40, seed=31)
    assert first.dataset_drift
    _run(ready_version, shift=40, seed=32)
    alerts = Alert.objects.filter(model=ready_version.model, key=rule.key)
    assert alerts.count() == 1 and alerts.get().status == AlertStatus.OPEN
    assert Notification.objects.filter(user=data_scientist, event="alert.opened").count() == 1


def test_it_resolves_the_alert_when_a_run_finds_no_drift(ready_version: ModelVersion) -> None:
    rule = _drift_rule(ready_version)
    _run(ready_version, shift=40, seed=33)
    clean = _run(ready_version, shift=0, seed=34)
    assert not clean.dataset_drift
    assert Alert.objects.get(key=rule.key).status == AlertStatus.RESOLVED


def test_it_waits_for_the_rule_window_of_consecutive_runs(ready_version: ModelVersion) -> None:
    rule = services.rule_create(model=ready_version.model, user=None, metric=RuleMetric.DRIFT_SHARE,
                                comparison="gte", threshold=0.5, window_runs=2)
    _run(ready_version, shift=40, seed=35)
    assert not Alert.objects.filter(key=rule.key).exists()
    _run(ready_version, shift=40, seed=36)
    assert Alert.objects.filter(key=rule.key, status=AlertStatus.OPEN).exists()


def test_it_sends_a_signed_webhook_for_an_opened_alert(ready_version: ModelVersion, admin_user: Any) -> None:
    from accounts.notifications import delivery_body, delivery_headers, webhook_create, webhook_signature

    _, secret = webhook_create(admin=admin_user, name="pager", url="https://hooks.example.com/ops",
                               events=["alert.opened"])
    _drift_rule(ready_version)
    _run(ready_version, shift=40, seed=37)
    delivery = WebhookDelivery.objects.get(event="alert.opened")
    assert delivery.payload["model"] == "churn" and delivery.payload["kind"] == "drift"
    body = delivery_body(delivery)
    headers = delivery_headers(delivery, body, now=1_800_000_000)
    assert headers["X-OpsPortal-Signature"].endswith(webhook_signature(secret, headers["X-OpsPortal-Timestamp"], body))


def test_it_creates_defaults_and_a_daily_beat_schedule_for_production_models(ready_version: ModelVersion) -> None:
    ModelVersion.objects.filter(pk=ready_version.pk).update(stage="production")
    assert services.defaults_ensure() == 1
    task = PeriodicTask.objects.get(task=services.SCHEDULED_TASK)
    assert (task.interval.every, task.interval.period, task.enabled) == (24, "hours", True)
    metrics = set(AlertRule.objects.filter(model=ready_version.model).values_list("metric", flat=True))
    assert {"drift_share", "auc", "error_rate", "latency_p95_ms"} <= metrics
    assert services.defaults_ensure() == 0


def test_it_edits_the_schedule_in_place(ready_version: ModelVersion, data_scientist: Any) -> None:
    services.schedule_set(model=ready_version.model, user=data_scientist)
    services.schedule_set(model=ready_version.model, user=data_scientist, every_hours=6, window_hours=12,
                          enabled=False)
    task = PeriodicTask.objects.get(task=services.SCHEDULED_TASK)
    assert (task.interval.every, task.enabled) == (6, False)


def test_it_refuses_a_regression_metric_for_a_classifier(ready_version: ModelVersion) -> None:
    with pytest.raises(services.MonitoringError) as refused:
        services.rule_create(model=ready_version.model, user=None, metric=RuleMetric.RMSE, comparison="gt",
                             threshold=1.0)
    assert refused.value.message == services.MSG_RULE_METRIC.format(task="binary classification")

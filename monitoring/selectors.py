"""Monitoring reads. Visibility follows the registry: another team's model, run or alert is a 404."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from monitoring.models import (
    Alert,
    AlertRule,
    AlertStatus,
    FeatureDrift,
    MonitoringRun,
    MonitoringSchedule,
    ReferenceProfile,
    RunStatus,
    Severity,
)
from registry.models import RegisteredModel

SERIES_DAYS = 366
SERIES_FIELDS = ("pk", "created_at", "version__number", "status", "rows_current", "drift_share", "dataset_drift",
                 "columns_drifted", "columns_total", "prediction_drift", "data_quality", "performance",
                 "estimated_performance", "service")


def open_critical_alerts(model_id: int) -> QuerySet[Alert]:
    """Critical alerts not yet resolved (acknowledged ones still count: the condition holds)."""
    return Alert.objects.filter(model_id=model_id, severity=Severity.CRITICAL).exclude(status=AlertStatus.RESOLVED)


def _visible_model_ids(user: Any) -> QuerySet[Any]:
    from registry.selectors import models_visible_to

    return models_visible_to(user).values("pk")


def alerts_visible_to(user: Any, *, status: str = "", model: str = "") -> QuerySet[Alert]:
    alerts = Alert.objects.filter(model__in=_visible_model_ids(user)).select_related(
        "model", "version", "acknowledged_by")
    if status == "active":
        alerts = alerts.exclude(status=AlertStatus.RESOLVED)
    elif status:
        alerts = alerts.filter(status=status)
    if model:
        alerts = alerts.filter(model__name=model)
    return alerts


def alert_for(user: Any, pk: int) -> Alert:
    alert = alerts_visible_to(user).filter(pk=pk).first()
    if alert is None:
        raise Http404("No such alert.")
    return alert


def runs_visible_to(user: Any) -> QuerySet[MonitoringRun]:
    return MonitoringRun.objects.filter(model__in=_visible_model_ids(user)).select_related(
        "model", "version", "requested_by")


def run_for(user: Any, pk: int) -> MonitoringRun:
    run = runs_visible_to(user).filter(pk=pk).first()
    if run is None:
        raise Http404("No such monitoring run.")
    return run


def run_features(run: MonitoringRun) -> QuerySet[FeatureDrift]:
    return run.features.order_by("-drifted", "column")


def recent_runs(model: RegisteredModel, limit: int = 20) -> QuerySet[MonitoringRun]:
    return model.monitoring_runs.select_related("version", "requested_by").order_by("-created_at", "-id")[:limit]


def latest_run(model: RegisteredModel) -> MonitoringRun | None:
    return (model.monitoring_runs.filter(status=RunStatus.SUCCEEDED).select_related("version")
            .order_by("-created_at", "-id").first())


def schedule_for(model: RegisteredModel) -> MonitoringSchedule | None:
    return MonitoringSchedule.objects.filter(model=model).first()


def rules_of(model: RegisteredModel) -> QuerySet[AlertRule]:
    return model.alert_rules.all()


def profile_of(version: Any) -> ReferenceProfile | None:
    return ReferenceProfile.objects.filter(version=version).first()


def series(model: RegisteredModel, *, days: int = SERIES_DAYS) -> dict[str, Any]:
    """Every succeeded run of the last `days` with its figures, and per-feature drift scores: two queries."""
    since = timezone.now() - timedelta(days=days)
    runs = list(model.monitoring_runs.filter(status=RunStatus.SUCCEEDED, created_at__gte=since)
                .order_by("created_at", "id").values(*SERIES_FIELDS))
    features = (FeatureDrift.objects.filter(run__model=model, run__status=RunStatus.SUCCEEDED,
                                            run__created_at__gte=since)
                .values_list("run_id", "column", "score", "drifted", "method"))
    by_run: dict[int, dict[str, Any]] = {}
    for run_id, column, score, drifted, method in features:
        by_run.setdefault(run_id, {})[column] = {"score": score, "drifted": drifted, "method": method}
    for run in runs:
        run["features"] = by_run.get(run["pk"], {})
    return {"runs": runs}


def open_alerts(model: RegisteredModel) -> list[Alert]:
    return list(model.alerts.exclude(status=AlertStatus.RESOLVED).select_related("version", "acknowledged_by"))


def prometheus_rows() -> list[dict[str, Any]]:
    """Latest succeeded run per model and version, and open alerts per model and severity."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    since = timezone.now() - timedelta(days=30)
    for run in (MonitoringRun.objects.filter(status=RunStatus.SUCCEEDED, created_at__gte=since)
                .order_by("created_at", "id")
                .values("model__name", "version__number", "drift_share", "dataset_drift", "rows_current",
                        "prediction_drift", "performance", "estimated_performance", "service", "created_at")):
        latest[(run["model__name"], run["version__number"])] = run
    return list(latest.values())


def open_alert_counts() -> list[tuple[str, str, int]]:
    from django.db.models import Count

    rows = (Alert.objects.exclude(status=AlertStatus.RESOLVED).values("model__name", "severity")
            .annotate(n=Count("id")).order_by("model__name", "severity"))
    return [(r["model__name"], r["severity"], r["n"]) for r in rows]

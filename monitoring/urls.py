"""Monitoring: pages (`urlpatterns`) and REST operations (`api_urlpatterns`, under /api/v1/)."""

from __future__ import annotations

from django.urls import URLPattern, path

from monitoring import api, views

app_name = "monitoring"

urlpatterns: list[URLPattern] = [
    path("", views.alert_inbox, name="alerts"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
    path("models/<slug:name>/", views.model_health, name="model"),
    path("models/<slug:name>/runs/", views.run_create, name="run-create"),
    path("models/<slug:name>/schedule/", views.schedule_update, name="schedule"),
    path("models/<slug:name>/rules/", views.rule_create, name="rule-create"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/status/", views.run_status, name="run-status"),
    path("runs/<int:pk>/report/", views.run_report, name="run-report"),
    # Prometheus scrapes this; the lead mounts the same view at /metrics as well.
    path("metrics", views.metrics, name="metrics"),
]
api_urlpatterns: list[URLPattern] = [
    path("models/<slug:name>/monitoring/", api.SeriesApi.as_view(), name="api-monitoring-series"),
    path("models/<slug:name>/monitoring/runs/", api.RunCreateApi.as_view(), name="api-monitoring-run-create"),
    path("monitoring/runs/<int:pk>/", api.RunDetailApi.as_view(), name="api-monitoring-run"),
    path("alerts/", api.AlertListApi.as_view(), name="api-alerts"),
    path("alerts/<int:pk>/acknowledge/", api.AlertAcknowledgeApi.as_view(), name="api-alert-acknowledge"),
]

"""Monitoring reads."""

from __future__ import annotations

from django.db.models import QuerySet

from monitoring.models import Alert, AlertStatus, Severity


def open_critical_alerts(model_id: int) -> QuerySet[Alert]:
    """Critical alerts not yet resolved (acknowledged ones still count: the condition holds)."""
    return Alert.objects.filter(model_id=model_id, severity=Severity.CRITICAL).exclude(status=AlertStatus.RESOLVED)

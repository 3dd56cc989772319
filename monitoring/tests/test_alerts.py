"""Alerts open once per condition, clear themselves, and are acknowledged by people."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent, Notification
from monitoring import services
from monitoring.models import Alert, AlertKind, AlertStatus, Severity
from opsportal.errors import DomainError
from registry.models import RegisteredModel

pytestmark = pytest.mark.django_db


def _raise(model: RegisteredModel, key: str = "drift:tenure") -> tuple[Alert, bool]:
    return services.alert_raise(model=model, key=key, kind=AlertKind.DRIFT, severity=Severity.WARNING,
                                title="tenure drifted")


def test_it_opens_one_alert_while_the_condition_holds(churn_model: RegisteredModel) -> None:
    first, created = _raise(churn_model)
    again, created_again = _raise(churn_model)
    assert created and not created_again
    assert again.pk == first.pk
    assert Alert.objects.filter(model=churn_model).count() == 1


def test_it_notifies_the_team_and_audits_the_opening(churn_model: RegisteredModel, data_scientist: Any) -> None:
    alert, _ = _raise(churn_model)
    assert Notification.objects.filter(user=data_scientist, event="alert.opened").exists()
    assert AuditEvent.objects.filter(action="alert.opened", target_id=str(alert.pk)).exists()


def test_it_resolves_when_the_condition_clears_and_reopens_later(churn_model: RegisteredModel) -> None:
    first, _ = _raise(churn_model)
    services.alert_clear(model=churn_model, key="drift:tenure")
    first.refresh_from_db()
    assert first.status == AlertStatus.RESOLVED and first.resolved_at is not None
    second, created = _raise(churn_model)
    assert created and second.pk != first.pk


def test_it_acknowledges_once(churn_model: RegisteredModel, approver: Any) -> None:
    alert, _ = _raise(churn_model)
    services.alert_acknowledge(alert=alert, user=approver)
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == approver
    with pytest.raises(DomainError) as refused:
        services.alert_acknowledge(alert=alert, user=approver)
    assert refused.value.status == 409

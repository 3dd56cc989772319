"""Monitoring writes. Alerts: raised once per condition, cleared when it clears, acknowledged by people.

Every part of OpsPortal that notices a condition (drift runs, performance, service
health, campaign uplift, failed retraining) raises it through `alert_raise` with a
stable `key`; while an alert with that key is open, raising it again changes
nothing, and `alert_clear` resolves it once the condition is gone.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.notifications import notify, users_with_role
from accounts.services import audit_record
from monitoring.models import Alert, AlertKind, AlertStatus, Severity
from opsportal.errors import DomainError
from opsportal.roles import Role
from registry.models import ModelVersion, RegisteredModel

MSG_ALREADY_RESOLVED = "This alert is already resolved."
MSG_ALREADY_ACKNOWLEDGED = "This alert is already acknowledged."


def alert_recipients(model: RegisteredModel) -> list[Any]:
    """The model's team and owners, plus approvers for critical conditions."""
    team = list(model.team.members.filter(is_active=True))
    owners = list(model.owners.filter(is_active=True))
    return team + owners


def _open_alert(model: RegisteredModel, key: str) -> Alert | None:
    return Alert.objects.filter(model=model, key=key).exclude(status=AlertStatus.RESOLVED).first()


def alert_raise(
    *,
    model: RegisteredModel,
    key: str,
    kind: str = AlertKind.OTHER,
    severity: str = Severity.WARNING,
    title: str,
    detail: str = "",
    version: ModelVersion | None = None,
) -> tuple[Alert, bool]:
    """Open an alert for condition `key` unless one is open already. Returns (alert, created)."""
    existing = _open_alert(model, key)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                model=model, version=version, key=key, kind=kind, severity=severity, title=title[:200], detail=detail
            )
            audit_record(actor=None, action="alert.opened", target=alert,
                         payload={"model": model.name, "key": key, "kind": kind, "severity": severity})
            _notify_opened(alert)
    except IntegrityError:
        # Another process opened the same condition a moment ago: one alert, not two.
        return _open_alert(model, key) or Alert.objects.filter(model=model, key=key).first(), False
    # robust: a broker hiccup must not undo or break the alert itself.
    transaction.on_commit(lambda: _after_open(alert.pk), robust=True)
    return alert, True


def _notify_opened(alert: Alert) -> None:
    recipients = alert_recipients(alert.model)
    if alert.severity == Severity.CRITICAL:
        recipients += list(users_with_role(Role.APPROVER))
    notify(
        event="alert.opened",
        title=f"{alert.get_severity_display()} alert on {alert.model.name}: {alert.title}",
        body=alert.detail or alert.title,
        url=f"/monitoring/alerts/{alert.pk}/",
        recipients=recipients,
        payload={"alert": alert.pk, "model": alert.model.name, "kind": alert.kind, "key": alert.key,
                 "severity": alert.severity, "title": alert.title},
    )


def _after_open(alert_id: int) -> None:
    """Conditions that retraining can answer start a run (its trigger settings decide)."""
    from retraining.tasks import retraining_on_alert

    retraining_on_alert.delay(alert_id)


def alert_clear(*, model: RegisteredModel, key: str, reason: str = "The condition cleared.") -> Alert | None:
    """Resolve the open alert for `key`, if any."""
    alert = _open_alert(model, key)
    if alert is None:
        return None
    return _resolve(alert, actor=None, reason=reason)


def _resolve(alert: Alert, *, actor: Any, reason: str) -> Alert | None:
    with transaction.atomic():
        done = Alert.objects.filter(pk=alert.pk).exclude(status=AlertStatus.RESOLVED).update(
            status=AlertStatus.RESOLVED, resolved_at=timezone.now()
        )
        if not done:
            return None
        alert.refresh_from_db()
        audit_record(actor=actor, action="alert.resolved", target=alert, payload={"reason": reason})
        notify(
            event="alert.resolved",
            title=f"Resolved on {alert.model.name}: {alert.title}",
            body=reason,
            url=f"/monitoring/alerts/{alert.pk}/",
            recipients=alert_recipients(alert.model),
            payload={"alert": alert.pk, "model": alert.model.name, "key": alert.key, "reason": reason},
        )
    return alert


def alert_acknowledge(*, alert: Alert, user: Any, ip: str | None = None) -> Alert:
    """Someone is on it: the alert stays until the condition clears, but stops asking for attention."""
    with transaction.atomic():
        done = Alert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
            status=AlertStatus.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user
        )
        if not done:
            alert.refresh_from_db()
            message = MSG_ALREADY_RESOLVED if alert.status == AlertStatus.RESOLVED else MSG_ALREADY_ACKNOWLEDGED
            raise DomainError("alert_not_open", message, status=409)
        alert.refresh_from_db()
        audit_record(actor=user, action="alert.acknowledged", target=alert, ip=ip)
    return alert


def alert_resolve(*, alert: Alert, user: Any, reason: str, ip: str | None = None) -> Alert:
    """A person closes an alert by hand (the condition is known to be over)."""
    resolved = _resolve(alert, actor=user, reason=reason or "Resolved by hand.")
    if resolved is None:
        raise DomainError("alert_not_open", MSG_ALREADY_RESOLVED, status=409)
    return resolved

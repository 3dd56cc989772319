"""Retraining tasks: thin, ids in, service call. Routed to the `training` queue."""

from __future__ import annotations

from celery import shared_task

from retraining import services


@shared_task(name="retraining.tasks.retraining_on_alert")
def retraining_on_alert(alert_id: int) -> None:
    services.retraining_trigger_on_alert(alert_id=alert_id)

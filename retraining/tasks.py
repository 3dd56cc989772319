"""Retraining tasks: thin, ids in, service call. Routed to the `training` queue.

A run gets the training budget (`CELERY_TRAINING_TIME_LIMIT`, below the broker's visibility
timeout): the soft limit lets the run record why it stopped, the hard limit ends it.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from retraining import services

TRAINING_LIMIT = settings.CELERY_TRAINING_TIME_LIMIT
TRAINING_SOFT_LIMIT = max(1, TRAINING_LIMIT - max(1, min(60, TRAINING_LIMIT // 10)))


@shared_task(name="retraining.tasks.retraining_on_alert")
def retraining_on_alert(alert_id: int) -> None:
    services.retraining_trigger_on_alert(alert_id=alert_id)


@shared_task(name="retraining.tasks.retraining_scheduled")
def retraining_scheduled(recipe_id: int) -> None:
    services.retraining_scheduled(recipe_id=recipe_id)


@shared_task(name="retraining.tasks.run_execute", soft_time_limit=TRAINING_SOFT_LIMIT, time_limit=TRAINING_LIMIT)
def run_execute_task(run_id: int) -> None:
    services.run_execute(run_id=run_id)


@shared_task(name="retraining.tasks.labels_check")
def labels_check() -> None:
    services.labels_check()


@shared_task(name="retraining.tasks.runs_reconcile")
def runs_reconcile() -> None:
    services.runs_reconcile()

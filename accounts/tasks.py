from __future__ import annotations

import logging

from celery import Task, shared_task

from accounts import notifications, services

logger = logging.getLogger(__name__)


@shared_task(name="accounts.tasks.audit_verify")
def audit_verify() -> None:
    report = services.audit_verify()
    if not report.ok:
        logger.critical("Audit chain broken at event #%s: %s", report.broken_at, report.reason)


# --- webhooks ------------------------------------------------------------------------------


@shared_task(
    bind=True,
    name="accounts.tasks.deliver_webhook",
    # The service owns the limit: it counts attempts in the database (that count
    # survives a redelivered message, Celery's retry counter does not) and marks
    # the delivery failed at WEBHOOK_MAX_ATTEMPTS instead of raising again.
    max_retries=None,
    soft_time_limit=60,
    time_limit=90,
)
def deliver_webhook_task(self: Task, delivery_id: int) -> None:
    try:
        notifications.webhook_deliver(delivery_id=delivery_id)
    except notifications.WebhookTransientError as exc:
        raise self.retry(exc=exc, countdown=exc.retry_in) from exc


@shared_task(name="accounts.tasks.webhook_requeue_stale")
def webhook_requeue_stale() -> None:
    requeued = notifications.webhook_requeue_stale()
    if requeued:
        logger.warning("Re-enqueued %d webhook deliveries whose retry was overdue", requeued)


@shared_task(name="accounts.tasks.send_notification_emails")
def send_notification_emails_task(notification_ids: list[int]) -> None:
    notifications.notification_emails_send(notification_ids=notification_ids)

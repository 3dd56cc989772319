from __future__ import annotations

import logging

from celery import shared_task

from accounts import services

logger = logging.getLogger(__name__)


@shared_task(name="accounts.tasks.audit_verify")
def audit_verify() -> None:
    report = services.audit_verify()
    if not report.ok:
        logger.critical("Audit chain broken at event #%s: %s", report.broken_at, report.reason)

"""Business feedback tasks: thin, ids in, service call."""

from __future__ import annotations

from celery import shared_task

from feedback import analysis, outcomes


@shared_task(name="feedback.tasks.campaign_analyse")
def campaign_analyse(campaign_id: int) -> None:
    analysis.campaign_analyse(campaign_id=campaign_id)


@shared_task(name="feedback.tasks.outcome_upload_process")
def outcome_upload_process(upload_id: int) -> None:
    outcomes.outcome_upload_process(upload_id=upload_id)


@shared_task(name="feedback.tasks.reconcile")
def reconcile() -> None:
    """Uploads whose worker died, and analyses older than their campaign's data."""
    outcomes.uploads_requeue_stale()
    analysis.analyses_refresh_stale()

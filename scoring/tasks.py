"""Scoring tasks: thin, ids in, service call. Routed to the `scoring` queue."""

from __future__ import annotations

from celery import shared_task

from scoring import batch


@shared_task(name="scoring.tasks.job_plan")
def job_plan_task(job_id: int) -> None:
    batch.job_plan(job_id=job_id)


@shared_task(name="scoring.tasks.chunk_run")
def chunk_run_task(chunk_id: int) -> None:
    batch.chunk_run(chunk_id=chunk_id)


@shared_task(name="scoring.tasks.chunks_reconcile")
def chunks_reconcile() -> None:
    batch.chunks_reconcile()

"""Monitoring tasks: thin, ids in, service call. Routed to the `monitoring` queue."""

from __future__ import annotations

from celery import shared_task

from monitoring import services


@shared_task(name="monitoring.tasks.reference_profile_compute")
def reference_profile_compute(version_id: int) -> None:
    services.reference_profile_compute(version_id=version_id)


@shared_task(name="monitoring.tasks.run_execute")
def run_execute_task(run_id: int) -> None:
    services.run_execute(run_id=run_id)


@shared_task(name="monitoring.tasks.scheduled_runs")
def scheduled_runs(model_id: int) -> None:
    services.scheduled_runs(model_id=model_id)


@shared_task(name="monitoring.tasks.defaults_ensure")
def defaults_ensure() -> None:
    services.defaults_ensure()


@shared_task(name="monitoring.tasks.runs_reconcile")
def runs_reconcile() -> None:
    services.runs_reconcile()


@shared_task(name="monitoring.tasks.performance_refresh")
def performance_refresh(model_id: int) -> None:
    """Labels arrived for a model: recompute realized performance of its recent runs."""
    from registry.models import RegisteredModel

    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is not None:
        services.performance_refresh(model=model)

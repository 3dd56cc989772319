"""Registry tasks: thin, id in, service call."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from registry import services


@shared_task(
    name="registry.tasks.version_validate",
    soft_time_limit=settings.SANDBOX_TIMEOUT_SECONDS + 60,
    time_limit=settings.SANDBOX_TIMEOUT_SECONDS + 120,
)
def version_validate_task(version_id: int) -> None:
    services.version_validate(version_id=version_id)


@shared_task(name="registry.tasks.promotion_gates", soft_time_limit=settings.SANDBOX_TIMEOUT_SECONDS + 60,
             time_limit=settings.SANDBOX_TIMEOUT_SECONDS + 120)
def promotion_gates_task(request_id: int) -> None:
    from registry import promotions

    promotions.promotion_gates_evaluate(request_id=request_id)

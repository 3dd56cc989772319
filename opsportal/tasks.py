from __future__ import annotations

from celery import shared_task

from opsportal import services


@shared_task(name="opsportal.tasks.worker_ping_answer")
def worker_ping_answer_task(ping_id: int) -> None:
    services.worker_ping_answer(ping_id=ping_id)


@shared_task(name="opsportal.tasks.heartbeat")
def heartbeat() -> None:
    services.worker_heartbeat_record()

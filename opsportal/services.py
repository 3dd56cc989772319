from __future__ import annotations

import os
import socket

from django.db import transaction
from django.utils import timezone

from accounts.services import audit_record
from opsportal.models import WorkerHeartbeat, WorkerPing


def worker_ping_request(*, user, ip: str | None = None) -> WorkerPing:
    from opsportal.tasks import worker_ping_answer_task

    with transaction.atomic():
        ping = WorkerPing.objects.create(requested_by=user)
        audit_record(actor=user, action="system.worker_ping_requested", target=ping, ip=ip)
        transaction.on_commit(lambda: worker_ping_answer_task.delay(ping.pk))
    return ping


def worker_ping_answer(*, ping_id: int) -> bool:
    """Mark the ping answered by this process; False when it no longer exists."""
    updated = WorkerPing.objects.filter(pk=ping_id, answered_at__isnull=True).update(
        answered_at=timezone.now(), worker_hostname=socket.gethostname(), worker_pid=os.getpid()
    )
    return updated == 1


def worker_heartbeat_record() -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=socket.gethostname(), defaults={"beat_at": timezone.now()}
    )

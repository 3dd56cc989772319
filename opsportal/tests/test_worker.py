"""Round trips through the configured broker to a separate `celery worker` process."""

from __future__ import annotations

import os
import socket

import pytest
from django.db import transaction

from conftest import wait_for
from opsportal.celery import app
from opsportal.models import WorkerHeartbeat, WorkerPing
from opsportal.tasks import heartbeat, worker_ping_answer_task

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def answered(ping_id: int) -> WorkerPing | None:
    return WorkerPing.objects.filter(pk=ping_id, answered_at__isnull=False).first()


def test_it_runs_a_task_enqueued_by_a_web_request_in_the_worker_process(celery_worker_process, client, admin_user):
    client.force_login(admin_user)
    response = client.post("/system/ping/")
    assert response.status_code == 302
    ping = wait_for(lambda: answered(WorkerPing.objects.get().pk))
    assert ping.worker_pid != os.getpid()
    assert ping.round_trip_seconds is not None and ping.round_trip_seconds < 30
    row = client.get(f"/system/pings/{ping.pk}/row/").content.decode()
    assert "answered by" in row


def test_it_runs_the_scheduled_heartbeat_task(celery_worker_process, db):
    heartbeat.delay()
    beat = wait_for(lambda: WorkerHeartbeat.objects.filter(hostname=socket.gethostname()).first())
    assert beat.beat_at is not None


def test_it_never_publishes_a_task_from_a_rolled_back_transaction(celery_worker_process, admin_user):
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(lambda: heartbeat.delay())
        raise RuntimeError("roll back")
    ping = WorkerPing.objects.create(requested_by=admin_user)
    worker_ping_answer_task.delay(ping.pk)  # queued behind anything published before it
    wait_for(lambda: answered(ping.pk))
    assert not WorkerHeartbeat.objects.exists()


def test_it_refuses_a_pickle_message_injected_into_the_broker(celery_worker_process, admin_user):
    app.send_task("opsportal.tasks.heartbeat", serializer="pickle", queue="default")
    ping = WorkerPing.objects.create(requested_by=admin_user)
    worker_ping_answer_task.delay(ping.pk)
    wait_for(lambda: answered(ping.pk))
    assert not WorkerHeartbeat.objects.exists()
    log = celery_worker_process.log_path.read_text(errors="replace")
    assert "pickle" in log

"""Reads: dependency health and worker status."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu import Connection

from opsportal.models import WorkerHeartbeat, WorkerPing

HEARTBEAT_STALE_AFTER = timedelta(minutes=3)


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure means "down"; the reason is reported
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def broker_check() -> None:
    """Raises (kombu's OperationalError for Redis) when the broker cannot take a message now."""
    if settings.CELERY_BROKER_URL == "filesystem://":
        probe = settings.BROKER_DIR / ".healthz"
        probe.write_bytes(b"ok")
        probe.unlink()
        return
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        conn.default_channel.client.ping()


def health_report() -> dict[str, Any]:
    """Liveness plus database and broker status; `ok` is False when one is down."""
    database = _timed(_check_database)
    broker = _timed(broker_check)
    return {"ok": database["ok"] and broker["ok"], "database": database, "broker": broker}


def worker_heartbeats() -> list[dict[str, Any]]:
    now = timezone.now()
    return [
        {"hostname": hb.hostname, "beat_at": hb.beat_at, "alive": now - hb.beat_at < HEARTBEAT_STALE_AFTER}
        for hb in WorkerHeartbeat.objects.all()[:20]
    ]


def worker_pings_recent(limit: int = 10) -> list[WorkerPing]:
    return list(WorkerPing.objects.select_related("requested_by")[:limit])

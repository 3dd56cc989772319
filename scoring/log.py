"""The prediction log writer: never on the response path.

`record()` only appends to an in-memory queue. A daemon thread per process drains
it every FLUSH_SECONDS (or at BATCH_ROWS rows) with one bulk insert per batch.
A failed insert is retried with the next flush; after MAX_RETRIES the batch is
dropped and counted, so a database outage cannot grow memory without bound.
"""

from __future__ import annotations

import atexit
import logging
import queue
import random
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from scoring.models import PredictionLog

logger = logging.getLogger(__name__)
FLUSH_SECONDS = 0.5
BATCH_ROWS = 2000
MAX_QUEUE = 200_000
MAX_RETRIES = 5

_queue: queue.Queue[PredictionLog] = queue.Queue(maxsize=MAX_QUEUE)
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
stats = {"written": 0, "dropped": 0}


def sampled() -> bool:
    rate = settings.PREDICTION_LOG_SAMPLE_RATE
    return rate >= 1 or random.random() < rate  # noqa: S311 (sampling, not security)


def record(rows: list[PredictionLog]) -> None:
    """Queue rows for the writer; drops (and counts) them only when the queue is full."""
    for row in rows:
        try:
            _queue.put_nowait(row)
        except queue.Full:
            stats["dropped"] += 1
    if settings.SCORING_BACKGROUND_THREADS:
        _ensure_thread()


def _drain(limit: int = BATCH_ROWS) -> list[PredictionLog]:
    batch: list[PredictionLog] = []
    while len(batch) < limit:
        try:
            batch.append(_queue.get_nowait())
        except queue.Empty:
            break
    return batch


def discard() -> None:
    """Drop everything queued (tests start from an empty queue)."""
    while _drain():
        pass


def _write(batch: list[PredictionLog]) -> None:
    PredictionLog.objects.bulk_create(batch, batch_size=BATCH_ROWS)
    stats["written"] += len(batch)


def flush() -> int:
    """Write everything queued, in the calling thread; returns the number of rows written."""
    written = 0
    while batch := _drain():
        _write(batch)
        written += len(batch)
    return written


def _run() -> None:
    pending: list[PredictionLog] = []
    failures = 0
    while True:
        time.sleep(FLUSH_SECONDS)
        pending.extend(_drain(BATCH_ROWS * 5))
        if not pending:
            continue
        close_old_connections()
        try:
            _write(pending)
            pending, failures = [], 0
        except Exception:  # the database is unreachable: keep the batch, try again later
            failures += 1
            logger.exception("Prediction log write failed (%d/%d)", failures, MAX_RETRIES)
            if failures >= MAX_RETRIES:
                stats["dropped"] += len(pending)
                pending, failures = [], 0


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _start_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="prediction-log-writer", daemon=True)
            _thread.start()
            atexit.register(_flush_quietly)


def _flush_quietly() -> None:
    try:
        flush()
    except Exception:  # interpreter shutdown: nothing more can be done
        logger.exception("Prediction log rows lost at shutdown")

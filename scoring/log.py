"""The prediction log writer: never on the response path.

`record()` only appends to an in-memory queue. A daemon thread per process drains
it every FLUSH_SECONDS (or at BATCH_ROWS rows) with one COPY (PostgreSQL) or one
multi-row INSERT (SQLite) per batch. A failed write is retried with the next flush;
after MAX_RETRIES the batch is dropped and counted, so a database outage cannot grow
memory without bound.

Rows travel as plain tuples with their JSON already encoded, not as model
instances: building an ORM object and running bulk_create cost more than the
prediction itself, and the log must stay a small share of real-time throughput.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import random
import threading
import time
import uuid
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from scoring.models import PredictionLog

logger = logging.getLogger(__name__)
FLUSH_SECONDS = 0.5
BATCH_ROWS = 2000
MAX_QUEUE = 200_000
MAX_RETRIES = 5



class LogRow(NamedTuple):
    """One prediction log row, JSON fields already encoded (None stays SQL NULL)."""

    created_at: datetime
    model_id: int
    version_id: int
    request_id: str
    entity_id: str
    source: str
    features: str
    prediction: str
    probabilities: str | None
    score: float | None
    latency_ms: float


def encode(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def row_of(log: PredictionLog) -> LogRow:
    return LogRow(log.created_at, log.model_id, log.version_id, str(log.request_id), log.entity_id, log.source,
                  encode(log.features), encode(log.prediction), encode(log.probabilities), log.score,
                  log.latency_ms)


_queue: queue.Queue[LogRow] = queue.Queue(maxsize=MAX_QUEUE)
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
stats = {"written": 0, "dropped": 0}


def sampled() -> bool:
    rate = settings.PREDICTION_LOG_SAMPLE_RATE
    return rate >= 1 or random.random() < rate  # noqa: S311 (sampling, not security)


def record(rows: list[LogRow] | list[PredictionLog]) -> None:
    """Queue rows for the writer; drops (and counts) them only when the queue is full."""
    for row in rows:
        try:
            _queue.put_nowait(row_of(row) if isinstance(row, PredictionLog) else row)
        except queue.Full:
            stats["dropped"] += 1
    if settings.SCORING_BACKGROUND_THREADS:
        _ensure_thread()


def _drain(limit: int = BATCH_ROWS) -> list[LogRow]:
    batch: list[LogRow] = []
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


def _columns() -> tuple[str, str]:
    qn = connection.ops.quote_name
    names = [PredictionLog._meta.get_field(f).column for f in LogRow._fields]
    return qn(PredictionLog._meta.db_table), ", ".join(qn(n) for n in names)


def _sqlite_values(row: LogRow) -> tuple[Any, ...]:
    # As Django stores them on SQLite: naive UTC text for datetimes, 32 hex digits for UUIDs.
    created = connection.ops.adapt_datetimefield_value(row.created_at)
    return (created, *row[1:3], uuid.UUID(row.request_id).hex, *row[4:])


def _write(batch: list[LogRow]) -> None:
    table, columns = _columns()
    # One transaction per batch: in autocommit every row of executemany would be its own commit.
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(LogRow._fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608 (names from metadata)
                               [_sqlite_values(row) for row in batch])
    stats["written"] += len(batch)


def flush() -> int:
    """Write everything queued, in the calling thread; returns the number of rows written."""
    written = 0
    while batch := _drain():
        _write(batch)
        written += len(batch)
    return written


def _run() -> None:
    pending: list[LogRow] = []
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

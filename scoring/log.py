"""The prediction log writer: never on the response path.

`record()` only appends to an in-memory queue. The rows are written in batches,
one COPY (PostgreSQL) or one multi-row INSERT in one transaction (SQLite) each:

- under traffic, by the request thread itself once its response has been sent
  (`request_finished`), when FLUSH_SECONDS have passed since the last write or
  BATCH_ROWS rows are waiting;
- when traffic stops, by a daemon thread that writes what is left.

Writing in the request thread after the response, rather than in a thread of its
own, matters for speed: a writer thread competes with the request threads for the
GIL, and every row it bound made a request wait for the interpreter. A failed write
is kept and retried with the next batch; after MAX_RETRIES the batch is dropped and
counted, so a database outage cannot grow memory without bound.

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
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from django.conf import settings
from django.db import connection, transaction

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
    """Compact JSON text; NaN and infinities become null (PostgreSQL's jsonb refuses them)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # a type orjson does not know: the standard library's view of it
        return json.dumps(value, separators=(",", ":"), default=str)


def row_of(log: PredictionLog) -> LogRow:
    return LogRow(log.created_at, log.model_id, log.version_id, str(log.request_id), log.entity_id, log.source,
                  encode(log.features), encode(log.prediction), encode(log.probabilities), log.score,
                  log.latency_ms)


_queue: queue.Queue[LogRow] = queue.Queue(maxsize=MAX_QUEUE)
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
_write_lock = threading.Lock()
_pending: list[LogRow] = []  # a batch whose write failed, written first next time
_state = {"last_write": 0.0, "failures": 0}
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


def _sqlite_values(batch: list[LogRow]) -> list[tuple[Any, ...]]:
    """As Django stores them on SQLite: naive UTC text for datetimes, 32 hex digits for UUIDs.
    The rows of one request share their time, so each distinct time is converted once."""
    times: dict[datetime, str] = {}
    values = []
    utc = connection.timezone_name == "UTC"
    for row in batch:
        created = times.get(row.created_at)
        if created is None:
            created = times[row.created_at] = _sqlite_time(row.created_at, utc)
        values.append((created, *row[1:3], _hex(row.request_id), *row[4:]))
    return values


def _sqlite_time(value: datetime, utc: bool) -> str:
    """Django's SQLite form of a datetime. The times made here (timezone.now(), in UTC) for a database
    kept in UTC skip its time zone conversion, which cost more than the rest of the row."""
    if utc and value.tzinfo is UTC:
        return str(value.replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value(value)


def _hex(request_id: str) -> str:
    # Request ids are made here, as str(UUID): dropping the dashes is the hex form.
    return request_id.replace("-", "") if len(request_id) == 36 else uuid.UUID(request_id).hex


def _write(batch: list[LogRow]) -> None:
    table, columns = _columns()
    # One transaction per batch: in autocommit every row of executemany would be its own commit.
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        else:
            _insert_rows(cursor.cursor, table, columns, _sqlite_values(batch))
    stats["written"] += len(batch)


SQLITE_ROWS_PER_INSERT = 100  # 1,100 parameters: far below SQLite's limit of 32,766


def _insert_rows(cursor: Any, table: str, columns: str, values: list[tuple[Any, ...]]) -> None:
    """SQLite: multi-row INSERTs on the driver's cursor. executemany steps the statement once per row,
    letting go of the GIL and taking it back each time, which stalls the request threads around it."""
    row = "(" + ", ".join(["?"] * len(LogRow._fields)) + ")"
    for start in range(0, len(values), SQLITE_ROWS_PER_INSERT):
        part = values[start:start + SQLITE_ROWS_PER_INSERT]
        statement = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(part))}"  # noqa: S608 (names from metadata)
        cursor.execute(statement, [value for values_of_row in part for value in values_of_row])


def flush() -> int:
    """Write everything queued, in the calling thread; returns the number of rows written."""
    written = 0
    while batch := _drain():
        _write(batch)
        written += len(batch)
    return written


def flush_if_due(**_: Any) -> None:
    """`request_finished` receiver (the response is sent): write the queue when a batch is due."""
    if not settings.SCORING_BACKGROUND_THREADS:
        return  # tests and scripts write with flush() themselves
    if time.monotonic() - _state["last_write"] < FLUSH_SECONDS and _queue.qsize() < BATCH_ROWS:
        return
    _write_due()  # request_finished's own close_old_connections ran first: the connection is checked


def _write_due() -> None:
    """Write the kept batch and what is queued; one writer at a time, never raising."""
    if not _write_lock.acquire(blocking=False):
        return  # another thread is writing right now
    try:
        _state["last_write"] = time.monotonic()
        _pending.extend(_drain(BATCH_ROWS * 5))
        if not _pending:
            return
        try:
            _write(_pending)
            _pending.clear()
            _state["failures"] = 0
        except Exception:  # the database is unreachable: keep the batch, try again later
            _state["failures"] += 1
            logger.exception("Prediction log write failed (%d/%d)", _state["failures"], MAX_RETRIES)
            if _state["failures"] >= MAX_RETRIES:
                stats["dropped"] += len(_pending)
                _pending.clear()
                _state["failures"] = 0
    finally:
        _write_lock.release()


def _run() -> None:
    """Writes only when requests stopped doing it (no traffic, rows left in the queue)."""
    while True:
        time.sleep(FLUSH_SECONDS)
        if time.monotonic() - _state["last_write"] < FLUSH_SECONDS or (_queue.empty() and not _pending):
            continue
        try:
            _write_due()
        finally:  # rarely needed: hold no database session while idle (each round opens a fresh one)
            connection.close()


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

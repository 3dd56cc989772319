"""Batch scoring: a file in, chunked Celery work, a results file out — each input row exactly once.

How a row is never lost or duplicated:
- the input is converted once to Parquet with one row group per chunk (the plan);
- a chunk is claimed with a conditional UPDATE that counts attempts (a chunk that
  keeps crashing fails after CHUNK_MAX_ATTEMPTS instead of looping);
- its results (one Parquet part, stored by content) are attached in the same UPDATE
  that marks it done, and only while it is still running: a second execution of the
  same chunk finds it done and changes nothing. No two chunks of a job cover the same
  row (on PostgreSQL an exclusion constraint enforces the unique (job, row) key), so
  each row's result is stored exactly once;
- tasks are acknowledged late and rejected when their worker dies (redelivered
  at once), and `chunks_reconcile` re-queues chunks stuck in `running` after a
  whole worker was killed (the broker would otherwise wait for its visibility timeout).
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from accounts.services import audit_record
from opsportal.errors import DomainError
from opsportal.selectors import broker_check
from registry import artifacts
from registry.models import ModelVersion, RegisteredModel
from scoring import cache, log
from scoring.models import (
    ChunkStatus,
    JobStatus,
    PredictionSource,
    ScoringChunk,
    ScoringJob,
)

CHUNK_MAX_ATTEMPTS = 3
MSG_MISSING_COLUMNS = "The file lacks columns the model needs: {columns}."
MSG_ID_COLUMN = "The id column {column!r} is not in the file."
MSG_CANNOT_CANCEL = "The job has already finished ({status})."
MSG_CANCEL_NOT_YOURS = "Only whoever started the job, the model's data scientists, approvers and admins can cancel it."
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BatchError(DomainError):
    pass


# --- creating and planning a job -------------------------------------------------------------


def job_create(*, model: RegisteredModel, version: ModelVersion, user: Any, upload: Any, id_column: str = "",
               chunk_size: int = 5000, max_error_rate: float = 0.05, log_predictions: bool = False,
               ip: str | None = None) -> ScoringJob:
    # A job the broker cannot take now is refused (503) before anything is stored; one enqueued in the
    # moment the broker fails is planned later by the reconciler.
    broker_check()
    with artifacts.uploaded_to_path(upload) as path:
        info = artifacts.check_dataset(path)
        if id_column and id_column not in info.columns:
            raise BatchError("validation_error", MSG_ID_COLUMN.format(column=id_column),
                             details={"id_column": [MSG_ID_COLUMN.format(column=id_column)]})
        missing = [c for c in version.input_columns if c not in info.columns]
        if missing:
            message = MSG_MISSING_COLUMNS.format(columns=", ".join(missing[:20]))
            raise BatchError("validation_error", message, details={"file": [message]})
        blob = artifacts.blob_put(path, "datasets")
    with transaction.atomic():
        job = ScoringJob.objects.create(
            model=model, version=version, requested_by=user, input_key=blob.key, input_sha256=blob.sha256,
            input_format=info.format, input_filename=getattr(upload, "name", "")[:255], id_column=id_column,
            chunk_size=chunk_size, max_error_rate=max_error_rate, log_predictions=log_predictions,
        )
        audit_record(actor=user, action="scoring_job.created", target=job, ip=ip,
                     payload={"version": version.number, "input_sha256": blob.sha256})
        from scoring.tasks import job_plan_task

        transaction.on_commit(lambda: job_plan_task.delay(job.pk))
    return job


def _read_input(path: Path, fmt: str) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        return pq.read_table(path)
    # Every column as text: types come from the model's signature, per row (see coerce).
    header = pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20)).schema.names
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, "string"), strings_can_be_null=True, null_values=[""]))


def job_plan(*, job_id: int) -> None:
    """Worker: convert the input to Parquet (a row group per chunk), create the chunks, queue them."""
    import pyarrow.parquet as pq

    if not ScoringJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    ):
        return
    job = ScoringJob.objects.get(pk=job_id)
    with tempfile.TemporaryDirectory(prefix="opsportal-plan-") as tmp:
        with artifacts.blob_local_copy(job.input_key, job.input_sha256, Path(tmp)) as path:
            table = _read_input(path, job.input_format)
        plan_path = Path(tmp) / "plan.parquet"
        pq.write_table(table, plan_path, row_group_size=job.chunk_size)
        plan = artifacts.blob_put(plan_path, "plans")
    total = table.num_rows
    size = job.chunk_size
    chunks = [ScoringChunk(job=job, index=i, start_row=i * size, end_row=min(total, (i + 1) * size))
              for i in range(math.ceil(total / size))]
    with transaction.atomic():
        ScoringChunk.objects.bulk_create(chunks)
        ScoringJob.objects.filter(pk=job.pk).update(plan_key=plan.key, plan_sha256=plan.sha256, total_rows=total)
        from scoring.tasks import chunk_run_task

        for chunk in ScoringChunk.objects.filter(job=job).values_list("pk", flat=True):
            transaction.on_commit(lambda pk=chunk: chunk_run_task.delay(pk))
    if total == 0:
        _finish_if_done(job.pk)


# --- one chunk --------------------------------------------------------------------------------


def _claim(chunk_id: int) -> ScoringChunk | None:
    claimable = Q(status=ChunkStatus.PENDING) | Q(status=ChunkStatus.RUNNING)
    claimed = ScoringChunk.objects.filter(claimable, pk=chunk_id, attempts__lt=CHUNK_MAX_ATTEMPTS,
                                          job__status=JobStatus.RUNNING).update(
        status=ChunkStatus.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now())
    if claimed:
        return ScoringChunk.objects.select_related("job__version", "job__model").get(pk=chunk_id)
    failed = ScoringChunk.objects.filter(claimable, pk=chunk_id, attempts__gte=CHUNK_MAX_ATTEMPTS).update(
        status=ChunkStatus.FAILED, finished_at=timezone.now(),
        error=f"The chunk crashed its worker {CHUNK_MAX_ATTEMPTS} times; its rows were not scored.")
    if failed:
        _count_failed_chunk(chunk_id)
    return None


def _count_failed_chunk(chunk_id: int) -> None:
    """The rows of a chunk given up on are failed rows: the errors file lists them with the chunk's reason."""
    chunk = ScoringChunk.objects.get(pk=chunk_id)
    ScoringJob.objects.filter(pk=chunk.job_id).update(rows_failed=F("rows_failed") + (chunk.end_row - chunk.start_row))
    _finish_if_done(chunk.job_id)


# Each worker process keeps the plans it is scoring on local disk, hash-checked once when copied:
# a chunk then reads only its own row group instead of copying and hashing the whole plan again.
PLANS_KEPT = 2
_plans: OrderedDict[str, Path] = OrderedDict()
_plans_dir: list[Path] = []


def _local_plan(job: ScoringJob) -> Path:
    found = _plans.get(job.plan_sha256)
    if found is not None and found.exists():
        _plans.move_to_end(job.plan_sha256)
        return found
    if not _plans_dir or not _plans_dir[0].is_dir():
        _plans_dir[:] = [Path(tempfile.mkdtemp(prefix="opsportal-plans-"))]
    with artifacts.blob_local_copy(job.plan_key, job.plan_sha256, _plans_dir[0]) as path:
        _plans[job.plan_sha256] = path
    while len(_plans) > PLANS_KEPT:
        _plans.popitem(last=False)[1].unlink(missing_ok=True)
    return path


def _plan_rows(job: ScoringJob, chunk: ScoringChunk) -> Any:
    """The chunk's rows as an Arrow table (its row group of the plan)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(_local_plan(job)).read_row_group(chunk.index)


def _is_text(column: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(column.type) or pa.types.is_large_string(column.type)


def _blank(column: Any) -> np.ndarray:
    """Missing, or text that is empty once stripped (numbers are never blank, NaN is missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if _is_text(column):
        empty = pc.equal(pc.utf8_trim_whitespace(column), "")
        return pc.or_kleene(column.is_null(), pc.fill_null(empty, False)).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type):
        return pc.fill_null(pc.is_nan(column), True).to_numpy(zero_copy_only=False)
    return column.is_null().to_numpy(zero_copy_only=False)


def _numbers(column: Any, blank: np.ndarray) -> pd.Series:
    """Numbers for a numeric input; text that is not a number becomes NaN (reported by the caller)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_pandas()
    if _is_text(column):
        try:  # Arrow's parser in C++; any text it refuses goes through pandas, which says which rows
            return pc.cast(pc.if_else(pa.array(blank), None, column), pa.float64()).to_pandas()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    raw = column.to_pandas()
    return pd.to_numeric(raw.where(~blank), errors="coerce")


def coerce(table: Any, signature: dict[str, Any], first_row: int = 0) -> tuple[pd.DataFrame, dict[int, str]]:
    """Typed model inputs from file rows (an Arrow table), and a readable error for each row that cannot be.

    Masks are computed over whole columns; only rows with a problem are visited one by one.
    """
    errors: dict[int, list[str]] = {}
    typed: dict[str, Any] = {}
    for spec in signature.get("inputs", []):
        name = spec["name"]
        column = table.column(name).combine_chunks()
        blank = _blank(column)
        if spec["dtype"] in ("integer", "float", "boolean"):
            values = _numbers(column, blank)
            for position in np.flatnonzero(values.isna().to_numpy() & ~blank):
                raw = column[int(position)].as_py()
                errors.setdefault(first_row + int(position), []).append(
                    f"{name}: expected a number, got {raw!r}"[:200])
        else:
            values = column.to_pandas()
            if blank.any():
                values = values.where(~blank)
        if not spec.get("nullable"):
            for position in np.flatnonzero(blank):
                errors.setdefault(first_row + int(position), []).append(f"{name}: is empty, and this column never is")
        typed[name] = values.to_numpy() if isinstance(values, pd.Series) else values
    frame = pd.DataFrame(typed, index=pd.RangeIndex(first_row, first_row + table.num_rows))
    return frame, {row: "; ".join(problems) for row, problems in errors.items()}


def _predict(predictor: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and class probabilities; the ONNX twin computes both in one run."""
    if getattr(predictor, "engine", "") != "onnx":
        labels = np.asarray(predictor.predict(frame))
        return labels, predictor.predict_proba(frame) if predictor.classes is not None else None
    outputs = predictor.session.run(None, predictor.feed(frame))
    labels = np.asarray(outputs[0])
    if predictor.classes is None:
        return labels.reshape(len(frame), -1)[:, 0], None
    labels = labels.ravel()
    if len(outputs) < 2:
        return labels, None
    probabilities = outputs[1]
    if isinstance(probabilities, list):  # ZipMap output: one dict per row
        return labels, np.array([[row[c] for c in predictor.classes] for row in probabilities], dtype=float)
    return labels, np.asarray(probabilities, dtype=float)


class Scored:
    """One chunk's outcome, column by column: what its results part holds."""

    def __init__(self, rows: np.ndarray, ids: Any, errors: np.ndarray) -> None:
        self.rows, self.ids, self.errors = rows, ids, errors  # errors: "" for a scored row
        self.good = errors == ""
        self.labels: np.ndarray | None = None  # per scored row
        self.probabilities: np.ndarray | None = None
        self.classes: list[str] | None = None

    @property
    def failed(self) -> int:
        return int((~self.good).sum())

    def scores(self) -> np.ndarray | None:
        if self.labels is None:
            return None
        if self.probabilities is None:
            return self.labels.astype(float)
        # the positive class of a binary classifier, else the winning class's probability
        return self.probabilities[:, 1] if self.probabilities.shape[1] == 2 else self.probabilities.max(axis=1)


def _entity_ids(table: Any, id_column: str) -> Any:
    """The id of each row as text (at most 200 characters; a missing id is empty), as an Arrow array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not id_column:
        return pa.array([""] * table.num_rows, pa.string())
    column = table.column(id_column).combine_chunks()
    if not _is_text(column):
        column = pa.array(column.to_pandas().astype(str).where(column.is_valid().to_numpy(zero_copy_only=False), ""),
                          pa.string())
    return pc.utf8_slice_codeunits(pc.fill_null(column.cast(pa.string()), ""), 0, 200)


def _score_chunk(job: ScoringJob, chunk: ScoringChunk) -> tuple[Scored, pd.DataFrame]:
    table = _plan_rows(job, chunk)
    typed, row_errors = coerce(table, job.version.signature, chunk.start_row)
    rows = np.arange(chunk.start_row, chunk.start_row + table.num_rows)
    errors = np.full(len(rows), "", dtype=object)
    for row, message in row_errors.items():
        errors[row - chunk.start_row] = message
    scored = Scored(rows, _entity_ids(table, job.id_column), errors)
    if scored.good.any():
        predictor = cache.predictor_for(job.version)
        subset = typed if scored.good.all() else typed[scored.good]
        scored.labels, scored.probabilities = _predict(predictor, subset)
        scored.classes = [str(c) for c in predictor.classes] if predictor.classes is not None else None
    return scored, typed


def _spread(values: Any, kind: Any, scored: Scored) -> Any:
    """Per scored row -> per input row: rows that failed validation get a null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n, good = len(scored.rows), np.flatnonzero(scored.good)
    if values is None:
        return pa.nulls(n, kind)
    values = values if isinstance(values, pa.Array) else pa.array(values, kind)
    if len(good) == n:
        return values
    positions = np.full(n, len(good), dtype=np.int64)
    positions[good] = np.arange(len(good))
    return pc.take(pa.concat_arrays([values, pa.nulls(1, values.type)]), pa.array(positions))


def _label_array(labels: np.ndarray) -> Any:
    """Labels as Arrow values of their own type (text, integers, numbers); mixed kinds as text."""
    import pyarrow as pa

    try:
        return pa.array(labels)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([str(v) for v in labels.tolist()], pa.string())


def _part_table(job: ScoringJob, scored: Scored) -> Any:
    """Every row of the chunk: row, id, prediction, one probability per class, score, error ("" if scored)."""
    import pyarrow as pa

    columns: dict[str, Any] = {"row": pa.array(scored.rows.astype(np.int64)), "id": scored.ids,
                               "prediction": _spread(None if scored.labels is None else _label_array(scored.labels),
                                                     pa.string(), scored)}
    known = scored.classes or []
    for name in _classes(job):
        values = None
        if scored.probabilities is not None and name in known:
            values = scored.probabilities[:, known.index(name)].astype(np.float64)
        columns[f"probability_{name}"] = _spread(values, pa.float64(), scored)
    columns["score"] = _spread(scored.scores(), pa.float64(), scored)
    columns["error"] = pa.array(scored.errors, pa.string())
    return pa.table(columns)


def _part_bytes(job: ScoringJob, scored: Scored) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(_part_table(job, scored), buffer, compression="snappy")
    return buffer.getvalue()


def _safe_texts(values: Any) -> Any:
    """safe_cell over an Arrow string array: text starting like a formula gets a leading quote."""
    import pyarrow as pa
    import pyarrow.compute as pc

    risky = pc.is_in(pc.utf8_slice_codeunits(values, 0, 1), value_set=pa.array(list(FORMULA_PREFIXES)))
    return pc.if_else(risky, pc.binary_join_element_wise("'", values, ""), values)


def _label_cells(labels: np.ndarray) -> Any:
    """Labels as the CSV shows them: text through safe_cell, numbers as Python prints them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes, distinct = pd.factorize(labels)
    cells = [safe_cell(v) if isinstance(v, str) else str(v.item() if hasattr(v, "item") else v) for v in distinct]
    return pc.take(pa.array(cells, pa.string()), pa.array(codes))


def _export_lines(job: ScoringJob, scored: Scored) -> bytes:
    """The chunk's scored rows as lines of the results CSV (row, id, prediction, probabilities, version)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    good = np.flatnonzero(scored.good)
    if not len(good) or scored.labels is None:
        return b""
    ids = scored.ids if len(good) == len(scored.rows) else scored.ids.take(pa.array(good))
    columns = {"row": pa.array(scored.rows[good]), "id": _safe_texts(ids), "prediction": _label_cells(scored.labels)}
    known = scored.classes or []
    for name in _classes(job):  # the header's classes, from the signature, as the row-by-row writer did
        columns[f"probability_{name}"] = (
            pa.array(scored.probabilities[:, known.index(name)].astype(np.float64))
            if scored.probabilities is not None and name in known else pa.nulls(len(good), pa.float64()))
    columns["model_version"] = pa.array(np.full(len(good), job.version.number, dtype=np.int64))
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(columns), buffer, write_options=pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


def chunk_run(*, chunk_id: int) -> None:
    """Worker: score one chunk; its results part is attached in the one UPDATE that marks it done."""
    chunk = _claim(chunk_id)
    if chunk is None:
        return
    job = chunk.job
    scored, typed = _score_chunk(job, chunk)
    if not _attach(chunk, scored):
        return
    if job.log_predictions:
        log.record(_log_rows(job, scored, typed))
        log.flush()
    _finish_if_done(job.pk)


def _attach(chunk: ScoringChunk, scored: Scored) -> bool:
    """Store the chunk's parts and mark it done with them, counting its rows; False if another
    execution of the same chunk got there first (it waited on the row lock, then found it done).
    Parts are stored by content: a second execution finds the same bytes under the same key."""
    job = chunk.job
    part = artifacts.blob_put_bytes(_part_bytes(job, scored), "results")
    export = artifacts.blob_put_bytes(_export_lines(job, scored), "results")
    with transaction.atomic():
        if not ScoringChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING).update(
            status=ChunkStatus.DONE, finished_at=timezone.now(), results_key=part.key,
            results_sha256=part.sha256, export_key=export.key, export_sha256=export.sha256,
        ):
            return False
        ScoringJob.objects.filter(pk=job.pk).update(
            rows_done=F("rows_done") + len(scored.rows) - scored.failed,
            rows_failed=F("rows_failed") + scored.failed)
    return True


def _log_rows(job: ScoringJob, scored: Scored, typed: pd.DataFrame) -> list[log.LogRow]:
    if scored.labels is None:
        return []
    now, request_id = timezone.now(), f"00000000-0000-4000-8000-{job.pk:012d}"
    good = np.flatnonzero(scored.good)
    features = typed.iloc[good].astype(object).where(typed.iloc[good].notna(), None).to_dict("records")
    ids, labels, scores = scored.ids.take(good).to_pylist(), scored.labels.tolist(), scored.scores().tolist()
    probabilities: list[Any] = [None] * len(good)
    if scored.probabilities is not None and scored.classes is not None:
        probabilities = [dict(zip(scored.classes, row, strict=True)) for row in scored.probabilities.tolist()]
    return [log.LogRow(now, job.model_id, job.version_id, request_id, entity, PredictionSource.BATCH,
                       log.encode(row), log.encode(label), log.encode(proba), score, 0.0)
            for entity, row, label, proba, score in zip(ids, features, labels, probabilities, scores, strict=True)]


def _finish_if_done(job_id: int) -> None:
    if ScoringChunk.objects.filter(job_id=job_id, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]).exists():
        return
    job = ScoringJob.objects.get(pk=job_id)
    total = job.total_rows or 0
    rate = job.rows_failed / total if total else 0.0
    status = JobStatus.SUCCEEDED if job.rows_failed == 0 else (
        JobStatus.FAILED if rate > job.max_error_rate else JobStatus.PARTIAL)
    reason = "" if status == JobStatus.SUCCEEDED else (
        f"{job.rows_failed:,} of {total:,} rows could not be scored "
        f"({rate:.1%}; the limit is {job.max_error_rate:.1%}).")
    with transaction.atomic():
        if ScoringJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            status=status, status_reason=reason, finished_at=timezone.now()
        ):
            audit_record(actor=None, action="scoring_job.finished", target=job,
                         payload={"status": status, "rows_done": job.rows_done, "rows_failed": job.rows_failed})


# --- operations -------------------------------------------------------------------------------------


def chunks_reconcile(*, stale_after: timedelta | None = None) -> int:
    """Re-queue chunks whose message died with a worker; returns how many.

    - `running` for longer than stale_after: its worker died mid-chunk;
    - `pending` in a job where nothing has happened for stale_after (no chunk running, none started
      or finished): the planner died while queueing the chunks, or a dead worker held their messages.
      Such a chunk is stamped as re-queued (started_at) so a slow queue does not get it again
      before another stale_after has passed; a second delivery of a chunk is harmless anyway
      (it finds the chunk done, or loses the race on the done flag).
    """
    from scoring.tasks import chunk_run_task

    now = timezone.now()
    if stale_after is None:
        stale_after = timedelta(seconds=settings.SCORING_CHUNK_STALE_SECONDS)
    cutoff = now - stale_after
    stuck = list(ScoringChunk.objects.filter(status=ChunkStatus.RUNNING, started_at__lt=cutoff,
                                             job__status=JobStatus.RUNNING).values_list("pk", flat=True))
    recent = ScoringChunk.objects.filter(job=OuterRef("job")).filter(
        Q(status=ChunkStatus.RUNNING) | Q(started_at__gte=cutoff) | Q(finished_at__gte=cutoff))
    stalled = ScoringChunk.objects.filter(status=ChunkStatus.PENDING, job__status=JobStatus.RUNNING,
                                          job__started_at__lt=cutoff).exclude(Exists(recent))
    lost = list(stalled.values_list("pk", flat=True))
    ScoringChunk.objects.filter(pk__in=lost, status=ChunkStatus.PENDING).update(started_at=now)
    for pk in stuck + lost:
        chunk_run_task.delay(pk)
    return len(stuck) + len(lost) + _replan_unplanned(cutoff)


def _replan_unplanned(cutoff: Any) -> int:
    """Jobs still queued long after they were created: their planning message never reached the broker."""
    from scoring.tasks import job_plan_task

    waiting = list(ScoringJob.objects.filter(status=JobStatus.QUEUED, created_at__lt=cutoff)
                   .values_list("pk", flat=True))
    for pk in waiting:
        job_plan_task.delay(pk)
    return len(waiting)


def can_cancel(user: Any, job: ScoringJob) -> bool:
    from opsportal.roles import Role, has_role
    from registry.selectors import can_change_model

    return job.requested_by_id == user.pk or can_change_model(user, job.model) or has_role(user, Role.APPROVER)


def job_cancel(*, job: ScoringJob, user: Any, ip: str | None = None) -> None:
    if not can_cancel(user, job):
        raise BatchError("permission_denied", MSG_CANCEL_NOT_YOURS, status=403)
    with transaction.atomic():
        if not ScoringJob.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), status_reason=f"Cancelled by {user}."
        ):
            raise BatchError("conflict", MSG_CANNOT_CANCEL.format(status=job.status), status=409)
        ScoringChunk.objects.filter(job=job, status=ChunkStatus.PENDING).update(status=ChunkStatus.CANCELLED)
        audit_record(actor=user, action="scoring_job.cancelled", target=job, ip=ip)

def safe_cell(value: Any) -> Any:
    """Spreadsheet formula injection: text starting like a formula is written with a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _classes(job: ScoringJob) -> list[str]:
    return [str(c) for c in job.version.signature.get("output", {}).get("classes", [])]



def _verified_blob(key: str, sha256: str) -> bytes:
    """A stored blob's bytes, refused when they changed since they were stored (never sent half-checked)."""
    import hashlib

    from django.core.files.storage import default_storage

    with default_storage.open(key, "rb") as source:
        data = source.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise artifacts.ArtifactTampered(f"stored bytes of {key} do not hash to {sha256}")
    return data


def _parts(job: ScoringJob, *, with_failed: bool = False) -> Iterator[Any]:
    """The job's results parts in row order, as Arrow tables; a chunk given up on as its rows with the reason."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    statuses = [ChunkStatus.DONE, ChunkStatus.FAILED] if with_failed else [ChunkStatus.DONE]
    for chunk in job.chunks.filter(status__in=statuses).order_by("index"):
        if chunk.status == ChunkStatus.DONE:
            yield pq.read_table(io.BytesIO(_verified_blob(chunk.results_key, chunk.results_sha256)))
            continue
        n = chunk.end_row - chunk.start_row
        yield pa.table({"row": pa.array(np.arange(chunk.start_row, chunk.end_row, dtype=np.int64)),
                        "id": pa.array([""] * n, pa.string()), "error": pa.array([chunk.error] * n, pa.string())})


def _scored_part(table: Any) -> Any:
    import pyarrow.compute as pc

    return table.filter(pc.equal(table.column("error"), ""))


def results_csv(job: ScoringJob, *, errors_only: bool = False) -> Iterator[str]:
    """Streamed CSV: row, id, prediction, one probability column per class, model version (or the row errors).

    The scored rows come from the lines each chunk stored with its done flag (hash-checked before
    they are sent); a job whose chunks kept no lines is formatted from its results parts.
    """
    if errors_only:
        return _errors_csv(job)
    parts = list(job.chunks.filter(status=ChunkStatus.DONE).order_by("index").values_list(
        "export_key", "export_sha256"))
    if all(key for key, _ in parts):
        return _results_csv_parts(job, parts)
    return _results_csv_from_parts(job)


def _results_csv_parts(job: ScoringJob, parts: list[tuple[str, str]]) -> Iterator[str]:
    yield _csv_header(job)
    for key, sha256 in parts:
        yield _verified_blob(key, sha256).decode()


def _csv_header(job: ScoringJob) -> str:
    header = ["row", "id", "prediction", *[f"probability_{c}" for c in _classes(job)], "model_version"]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([safe_cell(h) for h in header])
    return buffer.getvalue()


def _results_csv_from_parts(job: ScoringJob) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    yield _csv_header(job)
    for table in _parts(job):
        scored = _scored_part(table)
        if not scored.num_rows:
            continue
        columns = {"row": scored.column("row"), "id": _safe_texts(scored.column("id").combine_chunks()),
                   "prediction": _label_cells(scored.column("prediction").to_numpy(zero_copy_only=False))}
        for name in _classes(job):
            columns[f"probability_{name}"] = scored.column(f"probability_{name}")
        columns["model_version"] = pa.array(np.full(scored.num_rows, job.version.number, dtype=np.int64))
        buffer = io.BytesIO()
        pacsv.write_csv(pa.table(columns), buffer, write_options=pacsv.WriteOptions(include_header=False))
        yield buffer.getvalue().decode()


def _errors_csv(job: ScoringJob) -> Iterator[str]:
    import pyarrow.compute as pc

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "id", "error"])
    yield buffer.getvalue()
    for table in _parts(job, with_failed=True):
        failed = table.filter(pc.not_equal(table.column("error"), ""))
        buffer.seek(0)
        buffer.truncate()
        for row, entity, error in zip(*(failed.column(c).to_pylist() for c in ("row", "id", "error")), strict=True):
            writer.writerow([row, safe_cell(entity), safe_cell(error)])
        yield buffer.getvalue()


def results_parquet(job: ScoringJob) -> bytes:
    """The scored rows as one Parquet file: row, id, prediction, probabilities, model version."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["row", "id", "prediction", *[f"probability_{c}" for c in _classes(job)]]
    tables = [_scored_part(t).select(names) for t in _parts(job)]
    if tables:
        table = pa.concat_tables(tables, promote_options="permissive")
    else:
        table = pa.table({n: pa.array([], pa.int64() if n == "row" else pa.float64() if n.startswith(
            "probability_") else pa.string()) for n in names})
    table = table.append_column("model_version", pa.array(np.full(table.num_rows, job.version.number, np.int64)))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def scored_entities(job: ScoringJob) -> Iterator[tuple[int, str, float]]:
    """(row, id, score) of every scored row that has an id, in row order: a campaign's candidates."""
    import pyarrow.compute as pc

    for table in _parts(job):
        scored = _scored_part(table)
        usable = scored.filter(pc.and_(pc.not_equal(scored.column("id"), ""), pc.is_valid(scored.column("score"))))
        yield from zip(*(usable.column(c).to_pylist() for c in ("row", "id", "score")), strict=True)

"""Batch scoring: a file in, chunked Celery work, a results file out — each input row exactly once.

How a row is never lost or duplicated:
- the input is converted once to Parquet with one row group per chunk (the plan);
- a chunk is claimed with a conditional UPDATE that counts attempts (a chunk that
  keeps crashing fails after CHUNK_MAX_ATTEMPTS instead of looping);
- its results are inserted in the same transaction that marks it done, under the
  unique key (job, row_number): a second execution of the same chunk either finds
  it done or fails on the key and rolls back;
- tasks are acknowledged late and rejected when their worker dies (redelivered
  at once), and `chunks_reconcile` re-queues chunks stuck in `running` after a
  whole worker was killed (the broker would otherwise wait for its visibility timeout).
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.services import audit_record
from opsportal.errors import DomainError
from registry import artifacts
from registry.models import ModelVersion, RegisteredModel
from scoring import cache, log
from scoring.models import (
    ChunkStatus,
    JobStatus,
    PredictionLog,
    PredictionSource,
    ScoringChunk,
    ScoringJob,
    ScoringResult,
)

CHUNK_MAX_ATTEMPTS = 3
MSG_MISSING_COLUMNS = "The file lacks columns the model needs: {columns}."
MSG_ID_COLUMN = "The id column {column!r} is not in the file."
MSG_CANNOT_CANCEL = "The job has already finished ({status})."
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BatchError(DomainError):
    pass


# --- creating and planning a job -------------------------------------------------------------


def job_create(*, model: RegisteredModel, version: ModelVersion, user: Any, upload: Any, id_column: str = "",
               chunk_size: int = 5000, max_error_rate: float = 0.05, log_predictions: bool = False,
               ip: str | None = None) -> ScoringJob:
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
    """The rows of a chunk given up on are failed rows, listed in the errors file with the reason."""
    chunk = ScoringChunk.objects.get(pk=chunk_id)
    with transaction.atomic():
        ScoringResult.objects.bulk_create(
            [ScoringResult(job_id=chunk.job_id, row_number=row, error=chunk.error)
             for row in range(chunk.start_row, chunk.end_row)], batch_size=2000, ignore_conflicts=True)
        ScoringJob.objects.filter(pk=chunk.job_id).update(
            rows_failed=F("rows_failed") + (chunk.end_row - chunk.start_row))
    _finish_if_done(chunk.job_id)


def _plan_rows(job: ScoringJob, chunk: ScoringChunk) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="opsportal-chunk-") as tmp, \
            artifacts.blob_local_copy(job.plan_key, job.plan_sha256, Path(tmp)) as path:
        frame = pq.ParquetFile(path).read_row_group(chunk.index).to_pandas()
    frame.index = range(chunk.start_row, chunk.start_row + len(frame))
    return frame


def coerce(frame: pd.DataFrame, signature: dict[str, Any]) -> tuple[pd.DataFrame, dict[int, str]]:
    """Typed model inputs from file rows, and a readable error for each row that cannot be."""
    errors: dict[int, list[str]] = {}
    typed = pd.DataFrame(index=frame.index)
    for column in signature.get("inputs", []):
        name, raw = column["name"], frame[column["name"]]
        blank = raw.isna() | raw.astype(str).str.strip().eq("")
        if column["dtype"] in ("integer", "float", "boolean"):
            values = pd.to_numeric(raw.where(~blank), errors="coerce")
            bad = values.isna() & ~blank
            for row in frame.index[bad]:
                errors.setdefault(row, []).append(f"{name}: expected a number, got {raw[row]!r}"[:200])
        else:
            values = raw.where(~blank)
        if not column.get("nullable"):
            for row in frame.index[blank]:
                errors.setdefault(row, []).append(f"{name}: is empty, and this column never is")
        typed[name] = values
    return typed, {row: "; ".join(problems) for row, problems in errors.items()}


def _results(job: ScoringJob, frame: pd.DataFrame, typed: pd.DataFrame, errors: dict[int, str]) -> list[ScoringResult]:
    ids = frame[job.id_column].astype(str).tolist() if job.id_column else [""] * len(frame)
    good = [row for row in frame.index if row not in errors]
    rows = {row: ScoringResult(job=job, row_number=row, entity_id=entity[:200], error=errors.get(row, ""))
            for row, entity in zip(frame.index, ids, strict=True)}
    if good:
        predictor = cache.predictor_for(job.version)
        subset = typed.loc[good]
        labels = np.asarray(predictor.predict(subset)).tolist()
        probabilities = predictor.predict_proba(subset) if predictor.classes is not None else None
        classes = [str(c) for c in predictor.classes] if predictor.classes is not None else None
        for position, row in enumerate(good):
            result = rows[row]
            result.prediction = labels[position]
            if probabilities is not None:
                result.probabilities = dict(zip(classes, map(float, probabilities[position]), strict=True))
                result.score = float(probabilities[position][1] if len(classes) == 2 else max(probabilities[position]))
            else:
                result.score = float(labels[position])
    return list(rows.values())


def chunk_run(*, chunk_id: int) -> None:
    """Worker: score one chunk and store its rows together with the chunk's done flag."""
    chunk = _claim(chunk_id)
    if chunk is None:
        return
    job = chunk.job
    frame = _plan_rows(job, chunk)
    typed, errors = coerce(frame, job.version.signature)
    results = _results(job, frame, typed, errors)
    failed = sum(1 for r in results if r.error)
    try:
        with transaction.atomic():
            if not ScoringChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING).update(
                status=ChunkStatus.DONE, finished_at=timezone.now()
            ):
                return
            ScoringResult.objects.bulk_create(results, batch_size=2000)
            ScoringJob.objects.filter(pk=job.pk).update(
                rows_done=F("rows_done") + len(results) - failed, rows_failed=F("rows_failed") + failed)
    except IntegrityError:
        return  # another execution of this chunk committed first: its rows stand, once
    if job.log_predictions:
        log.record(_log_rows(job, results, typed))
        log.flush()
    _finish_if_done(job.pk)


def _log_rows(job: ScoringJob, results: list[ScoringResult], typed: pd.DataFrame) -> list[PredictionLog]:
    now = timezone.now()
    features = typed.astype(object).where(typed.notna(), None)
    return [PredictionLog(created_at=now, model_id=job.model_id, version_id=job.version_id,
                          request_id=f"00000000-0000-4000-8000-{job.pk:012d}", entity_id=r.entity_id,
                          source=PredictionSource.BATCH, features=features.loc[r.row_number].to_dict(),
                          prediction=r.prediction, probabilities=r.probabilities, score=r.score, latency_ms=0)
            for r in results if not r.error]


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
    """Re-queue chunks stuck in `running` (their worker died); returns how many."""
    from scoring.tasks import chunk_run_task

    cutoff = timezone.now() - (stale_after or timedelta(seconds=settings.SCORING_CHUNK_STALE_SECONDS))
    stuck = list(ScoringChunk.objects.filter(status=ChunkStatus.RUNNING, started_at__lt=cutoff,
                                             job__status=JobStatus.RUNNING).values_list("pk", flat=True))
    for pk in stuck:
        chunk_run_task.delay(pk)
    return len(stuck)


def job_cancel(*, job: ScoringJob, user: Any, ip: str | None = None) -> None:
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


def results_csv(job: ScoringJob, *, errors_only: bool = False) -> Iterator[str]:
    """Streamed CSV: id, prediction, one probability column per class, model version (or the row errors)."""
    rows = job.results.order_by("row_number")
    rows = rows.exclude(error="") if errors_only else rows.filter(error="")
    classes = [str(c) for c in job.version.signature.get("output", {}).get("classes", [])]
    header = ["row", "id", "error"] if errors_only else [
        "row", "id", "prediction", *[f"probability_{c}" for c in classes], "model_version"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(h) for h in header])
    for result in rows.iterator(chunk_size=5000):
        if errors_only:
            line = [result.row_number, result.entity_id, result.error]
        else:
            probabilities = result.probabilities or {}
            line = [result.row_number, result.entity_id, result.prediction,
                    *[probabilities.get(c) for c in classes], job.version.number]
        writer.writerow([safe_cell(v) for v in line])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def results_parquet(job: ScoringJob) -> bytes:
    classes = [str(c) for c in job.version.signature.get("output", {}).get("classes", [])]
    records = [{"row": r.row_number, "id": r.entity_id, "prediction": r.prediction,
                **{f"probability_{c}": (r.probabilities or {}).get(c) for c in classes},
                "model_version": job.version.number} for r in job.results.filter(error="").order_by("row_number")]
    buffer = io.BytesIO()
    pd.DataFrame.from_records(records).to_parquet(buffer, index=False)
    return buffer.getvalue()

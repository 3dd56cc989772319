"""Outcome uploads: `entity_id, kpi, value[, observed_at]` rows from a CSV file or a JSON list.

Idempotent: (campaign, entity, kpi) is unique and rows are upserted; a row whose
value (and observed_at, when given) matches what is stored is counted unchanged and
not written, so re-uploading a file changes nothing. A bad row is reported with its
number and reason; good rows in the same file are kept. Small files and JSON are
read in the request; bigger files are stored and read by a worker in chunks, its
progress on the upload row (htmx polls it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.services import audit_record
from feedback import ingest
from feedback.models import (
    Assignment,
    Campaign,
    CampaignStatus,
    Kpi,
    KpiKind,
    Outcome,
    OutcomeUpload,
    UploadStatus,
)
from feedback.services import CampaignError
from registry import artifacts

CHUNK_ROWS = 5000
MAX_KEPT_ERRORS = 1000
REQUIRED_COLUMNS = ("entity_id", "kpi", "value")
MSG_NO_AUDIENCE = "Assign the campaign's audience first: outcomes are matched to its groups."
MSG_UNKNOWN_KPI = "kpi: {kpi!r} is not a KPI of this campaign ({kpis})."
MSG_NOT_ASSIGNED = "entity_id: {entity!r} is not in the campaign's audience."
MSG_NOT_BINARY = "value: {kpi} is a yes/no KPI, so the value must be 0 or 1, got {value:g}."
MSG_DUPLICATE = "{entity!r} / {kpi} appears again (first in row {row}); the first row was kept."
MSG_WORKER_CRASH = "The worker stopped while reading the file: {error}"


def _require_audience(campaign: Campaign) -> None:
    if campaign.status != CampaignStatus.RUNNING:
        raise CampaignError("conflict", MSG_NO_AUDIENCE, status=409)


# --- starting an upload -------------------------------------------------------------------------


def outcomes_from_json(*, campaign: Campaign, user: Any, body: Any, ip: str | None = None) -> OutcomeUpload:
    """Rows sent as JSON: processed in the request."""
    _require_audience(campaign)
    rows = ingest.json_rows(body, settings.FEEDBACK_MAX_JSON_ROWS)
    upload = OutcomeUpload.objects.create(campaign=campaign, uploaded_by=user, filename="(API)",
                                          status=UploadStatus.RUNNING, started_at=timezone.now(),
                                          total_rows=len(rows))
    _process(upload, rows, ip=ip)
    upload.refresh_from_db()
    return upload


def outcomes_from_file(*, campaign: Campaign, user: Any, upload_file: Any, ip: str | None = None) -> OutcomeUpload:
    """A CSV file: checked and stored now; read here when small, else by a worker."""
    _require_audience(campaign)
    with artifacts.uploaded_to_path(upload_file) as path:
        ingest.csv_header(path, REQUIRED_COLUMNS)
        blob = artifacts.blob_put(path, "outcomes")
    upload = OutcomeUpload.objects.create(campaign=campaign, uploaded_by=user,
                                          filename=getattr(upload_file, "name", "")[:255], file_key=blob.key,
                                          file_sha256=blob.sha256)
    if blob.size <= settings.FEEDBACK_INLINE_UPLOAD_BYTES:
        outcome_upload_process(upload_id=upload.pk, ip=ip)
    else:
        from feedback.tasks import outcome_upload_process as task

        transaction.on_commit(lambda: task.delay(upload.pk))
    upload.refresh_from_db()
    return upload


# --- reading it -----------------------------------------------------------------------------------


def _claim(upload_id: int) -> OutcomeUpload | None:
    """Queued, or running so long that its worker must have died: take it (and start the counts over)."""
    stale = timezone.now() - timedelta(seconds=settings.FEEDBACK_UPLOAD_STALE_SECONDS)
    claimable = Q(status=UploadStatus.QUEUED) | Q(status=UploadStatus.RUNNING, started_at__lt=stale)
    if not OutcomeUpload.objects.filter(claimable, pk=upload_id).update(
            status=UploadStatus.RUNNING, started_at=timezone.now(), rows_done=0, rows_failed=0, created=0,
            updated=0, unchanged=0, errors=[]):
        return None
    return OutcomeUpload.objects.select_related("campaign").get(pk=upload_id)


def outcome_upload_process(*, upload_id: int, ip: str | None = None) -> None:
    """Worker (or request, for small files): read the stored CSV chunk by chunk and upsert its rows."""
    upload = _claim(upload_id)
    if upload is None:
        return
    try:
        with tempfile.TemporaryDirectory(prefix="opsportal-outcomes-") as tmp, \
                artifacts.blob_local_copy(upload.file_key, upload.file_sha256, Path(tmp)) as path:
            OutcomeUpload.objects.filter(pk=upload.pk).update(total_rows=ingest.csv_row_count(path))
            _process(upload, ingest.csv_rows(path), ip=ip)
    except ingest.IngestError as problem:
        _fail(upload, problem.message)
    except Exception as problem:  # recorded on the upload so the page says why; re-raised for the log
        _fail(upload, MSG_WORKER_CRASH.format(error=str(problem)[:300]))
        raise


def _fail(upload: OutcomeUpload, reason: str) -> None:
    OutcomeUpload.objects.filter(pk=upload.pk).update(status=UploadStatus.FAILED, status_reason=reason,
                                                      finished_at=timezone.now())


def _process(upload: OutcomeUpload, rows: Iterable[ingest.Row], *, ip: str | None) -> None:
    campaign = upload.campaign
    kpis = {k.name: k for k in campaign.kpis.all()}
    for batch in ingest.chunks(rows, CHUNK_ROWS):
        counts, errors = _chunk(campaign, kpis, batch)
        _progress(upload, counts, errors)
    _finish(upload, ip=ip)


def _progress(upload: OutcomeUpload, counts: dict[str, int], errors: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        current = OutcomeUpload.objects.select_for_update().get(pk=upload.pk)
        room = MAX_KEPT_ERRORS - len(current.errors)
        OutcomeUpload.objects.filter(pk=upload.pk).update(
            rows_done=F("rows_done") + counts["created"] + counts["updated"] + counts["unchanged"],
            rows_failed=F("rows_failed") + len(errors), created=F("created") + counts["created"],
            updated=F("updated") + counts["updated"], unchanged=F("unchanged") + counts["unchanged"],
            errors=current.errors + errors[:max(room, 0)])


def _finish(upload: OutcomeUpload, *, ip: str | None) -> None:
    from feedback.services import _queue_analysis

    with transaction.atomic():
        done = OutcomeUpload.objects.get(pk=upload.pk)
        OutcomeUpload.objects.filter(pk=upload.pk).update(
            status=UploadStatus.DONE, finished_at=timezone.now(),
            total_rows=done.rows_done + done.rows_failed)
        changed = done.created + done.updated
        if changed:
            Campaign.objects.filter(pk=upload.campaign_id).update(data_version=F("data_version") + 1)
            _queue_analysis(upload.campaign_id)
        audit_record(actor=upload.uploaded_by, action="campaign.outcomes_uploaded", target=upload.campaign, ip=ip,
                     payload={"upload": upload.pk, "file": upload.filename, "sha256": upload.file_sha256,
                              "created": done.created, "updated": done.updated, "unchanged": done.unchanged,
                              "failed": done.rows_failed})


# --- one chunk ------------------------------------------------------------------------------------


def _parse(number: int, row: Any, kpis: dict[str, Kpi]) -> tuple[str, Kpi, float, Any]:
    if not isinstance(row, dict):
        raise ValueError(ingest.MSG_ROW_NOT_OBJECT)
    entity = ingest.text(row, "entity_id")
    name = ingest.text(row, "kpi", 64)
    kpi = kpis.get(name)
    if kpi is None:
        raise ValueError(MSG_UNKNOWN_KPI.format(kpi=name, kpis=", ".join(kpis)))
    value = ingest.number(row, "value")
    if kpi.kind == KpiKind.BINARY and value not in (0.0, 1.0):
        raise ValueError(MSG_NOT_BINARY.format(kpi=kpi.name, value=value))
    return entity, kpi, value, ingest.moment(row)


def _parsed_rows(batch: list[ingest.Row], kpis: dict[str, Kpi],
                 errors: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[int, float, Any]]:
    good: dict[tuple[str, int], tuple[int, float, Any]] = {}
    for number, row in batch:
        try:
            entity, kpi, value, observed = _parse(number, row, kpis)
        except ValueError as problem:
            errors.append(ingest.row_error(number, str(problem), row if isinstance(row, dict) else None))
            continue
        key = (entity, kpi.pk)
        if key in good:
            errors.append(ingest.row_error(number, MSG_DUPLICATE.format(entity=entity, kpi=kpi.name,
                                                                        row=good[key][0]), row))
            continue
        good[key] = (number, value, observed)
    return good


def _chunk(campaign: Campaign, kpis: dict[str, Kpi],
           batch: list[ingest.Row]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Parse, match to the audience, compare with what is stored, upsert what changed."""
    errors: list[dict[str, Any]] = []
    good = _parsed_rows(batch, kpis, errors)
    entities = list({entity for entity, _ in good})
    groups = {e: (a, d) for e, a, d in Assignment.objects.filter(campaign=campaign, entity_id__in=entities)
              .values_list("entity_id", "arm_id", "decile")}
    stored = {(e, k): (v, o) for e, k, v, o in Outcome.objects.filter(campaign=campaign, entity_id__in=entities)
              .values_list("entity_id", "kpi_id", "value", "observed_at")}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    now = timezone.now()
    write = []
    for (entity, kpi_id), (number, value, observed) in good.items():
        if entity not in groups:
            errors.append(ingest.row_error(number, MSG_NOT_ASSIGNED.format(entity=entity), {"entity_id": entity}))
            continue
        before = stored.get((entity, kpi_id))
        when = observed or (before[1] if before else now)
        if before is not None and before == (value, when):
            counts["unchanged"] += 1
            continue
        counts["updated" if before else "created"] += 1
        arm, decile = groups[entity]
        write.append(Outcome(campaign=campaign, entity_id=entity, kpi_id=kpi_id, arm_id=arm, decile=decile,
                             value=value, observed_at=when))
    Outcome.objects.bulk_create(write, batch_size=CHUNK_ROWS, update_conflicts=True,
                                unique_fields=["campaign", "entity_id", "kpi"],
                                update_fields=["value", "observed_at", "updated_at"])
    errors.sort(key=lambda e: e["row"] or 0)
    return counts, errors


# --- operations -------------------------------------------------------------------------------------


def uploads_requeue_stale() -> int:
    """Uploads whose worker died or whose message was lost: queue them again (the claim decides)."""
    from feedback.tasks import outcome_upload_process as task

    cutoff = timezone.now() - timedelta(seconds=settings.FEEDBACK_UPLOAD_STALE_SECONDS)
    stale = OutcomeUpload.objects.filter(
        Q(status=UploadStatus.QUEUED, created_at__lt=cutoff) | Q(status=UploadStatus.RUNNING, started_at__lt=cutoff)
    ).exclude(file_key="")
    ids = list(stale.values_list("pk", flat=True)[:100])
    for pk in ids:
        task.delay(pk)
    return len(ids)

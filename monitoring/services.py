"""Monitoring writes: alerts, reference profiles, monitoring runs, schedules and alert rules.

Alerts: every part of OpsPortal that notices a condition (drift runs, performance,
service health, campaign uplift, failed retraining) raises it through `alert_raise`
with a stable `key`; while an alert with that key is open, raising it again changes
nothing, and `alert_clear` resolves it once the condition is gone.

Runs: a version's reference profile is computed by a worker when it becomes ready;
each run compares current data (a window of the prediction log, or an uploaded
file) with it, stores per-feature verdicts, data quality, performance and service
health, renders Evidently's report and evaluates the model's alert rules.
"""

from __future__ import annotations

import json as _json
import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.notifications import notify, users_with_role
from accounts.services import audit_record
from monitoring import drift, performance, profile, quality, reports
from monitoring.models import (
    Alert,
    AlertKind,
    AlertRule,
    AlertStatus,
    Comparison,
    FeatureDrift,
    MonitoringRun,
    MonitoringSchedule,
    ProfileStatus,
    ReferenceProfile,
    RuleMetric,
    RunSource,
    RunStatus,
    RunTrigger,
    Severity,
)
from opsportal.errors import DomainError
from opsportal.roles import Role
from registry import artifacts
from registry.models import AliasName, ModelVersion, RegisteredModel, Stage, Task, VersionStatus

MSG_ALREADY_RESOLVED = "This alert is already resolved."
MSG_ALREADY_ACKNOWLEDGED = "This alert is already acknowledged."


def alert_recipients(model: RegisteredModel) -> list[Any]:
    """The model's team and owners (`_notify_opened` adds approvers for critical alerts)."""
    team = list(model.team.members.filter(is_active=True))
    owners = list(model.owners.filter(is_active=True))
    return team + owners


def _open_alert(model: RegisteredModel, key: str) -> Alert | None:
    return Alert.objects.filter(model=model, key=key).exclude(status=AlertStatus.RESOLVED).first()


def alert_raise(
    *,
    model: RegisteredModel,
    key: str,
    kind: str = AlertKind.OTHER,
    severity: str = Severity.WARNING,
    title: str,
    detail: str = "",
    version: ModelVersion | None = None,
) -> tuple[Alert, bool]:
    """Open an alert for condition `key` unless one is open already. Returns (alert, created)."""
    existing = _open_alert(model, key)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                model=model, version=version, key=key, kind=kind, severity=severity, title=title[:200], detail=detail
            )
            audit_record(actor=None, action="alert.opened", target=alert,
                         payload={"model": model.name, "key": key, "kind": kind, "severity": severity})
            _notify_opened(alert)
    except IntegrityError:
        # Another process opened the same condition a moment ago: one alert, not two.
        return _open_alert(model, key) or Alert.objects.filter(model=model, key=key).first(), False
    # robust: a broker hiccup must not undo or break the alert itself.
    transaction.on_commit(lambda: _after_open(alert.pk), robust=True)
    return alert, True


def _notify_opened(alert: Alert) -> None:
    recipients = alert_recipients(alert.model)
    if alert.severity == Severity.CRITICAL:
        recipients += list(users_with_role(Role.APPROVER))
    notify(
        event="alert.opened",
        title=f"{alert.get_severity_display()} alert on {alert.model.name}: {alert.title}",
        body=alert.detail or alert.title,
        url=f"/monitoring/alerts/{alert.pk}/",
        recipients=recipients,
        payload={"alert": alert.pk, "model": alert.model.name, "kind": alert.kind, "key": alert.key,
                 "severity": alert.severity, "title": alert.title},
    )


def _after_open(alert_id: int) -> None:
    """Conditions that retraining can answer start a run (its trigger settings decide)."""
    from retraining.tasks import retraining_on_alert

    retraining_on_alert.delay(alert_id)


def alert_clear(*, model: RegisteredModel, key: str, reason: str = "The condition cleared.") -> Alert | None:
    """Resolve the open alert for `key`, if any."""
    alert = _open_alert(model, key)
    if alert is None:
        return None
    return _resolve(alert, actor=None, reason=reason)


def _resolve(alert: Alert, *, actor: Any, reason: str) -> Alert | None:
    with transaction.atomic():
        done = Alert.objects.filter(pk=alert.pk).exclude(status=AlertStatus.RESOLVED).update(
            status=AlertStatus.RESOLVED, resolved_at=timezone.now()
        )
        if not done:
            return None
        alert.refresh_from_db()
        audit_record(actor=actor, action="alert.resolved", target=alert, payload={"reason": reason})
        notify(
            event="alert.resolved",
            title=f"Resolved on {alert.model.name}: {alert.title}",
            body=reason,
            url=f"/monitoring/alerts/{alert.pk}/",
            recipients=alert_recipients(alert.model),
            payload={"alert": alert.pk, "model": alert.model.name, "key": alert.key, "reason": reason},
        )
    return alert


def alert_acknowledge(*, alert: Alert, user: Any, ip: str | None = None) -> Alert:
    """Someone is on it: the alert stays until the condition clears, but stops asking for attention."""
    with transaction.atomic():
        done = Alert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
            status=AlertStatus.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user
        )
        if not done:
            alert.refresh_from_db()
            message = MSG_ALREADY_RESOLVED if alert.status == AlertStatus.RESOLVED else MSG_ALREADY_ACKNOWLEDGED
            raise DomainError("alert_not_open", message, status=409)
        alert.refresh_from_db()
        audit_record(actor=user, action="alert.acknowledged", target=alert, ip=ip)
    return alert


def alert_resolve(*, alert: Alert, user: Any, reason: str, ip: str | None = None) -> Alert:
    """A person closes an alert by hand (the condition is known to be over)."""
    resolved = _resolve(alert, actor=user, reason=reason or "Resolved by hand.")
    if resolved is None:
        raise DomainError("alert_not_open", MSG_ALREADY_RESOLVED, status=409)
    return resolved


# --- reference profiles, runs, schedules and rules ------------------------------------------------------

logger = logging.getLogger(__name__)

MSG_NO_VERSION = "This model has no validated version to monitor yet."
MSG_VERSION_NOT_READY = "Version {number} is not validated, so it cannot be monitored."
MSG_NO_REFERENCE = "Version {number} was registered without reference data, so there is nothing to compare with."
MSG_BAD_WINDOW = "The window must start before it ends."
MSG_NO_ROWS = "No logged predictions in this window: nothing to compare yet."
MSG_SCHEDULE_RANGE = "Run every 1 to 720 hours, over a window of 1 to 2160 hours."
MSG_RULE_METRIC = "This metric does not apply to a {task} model."
MSG_RUN_STUCK = "The worker running this check stopped (it was restarted or killed); it was given up after {n} tries."
PROFILE_MAX_ATTEMPTS = 3
RUN_MAX_ATTEMPTS = 3
RUN_STALE_AFTER = timedelta(minutes=30)
PREDICTION_SAMPLE_ROWS = 50_000
PERFORMANCE_REFRESH_RUNS = 30
SEGMENT_MAX_VALUES = 10
SEGMENT_COLUMNS = 3


class MonitoringError(DomainError):
    """A monitoring rule said no."""


# --- reference profiles ------------------------------------------------------------------------------


def _reference_frame(version: ModelVersion, workdir: Path) -> pd.DataFrame:
    from registry.sandbox import read_dataset

    with artifacts.blob_local_copy(version.reference_key, version.reference_sha256, workdir) as path:
        frame = read_dataset(str(path), version.reference_format)
    inputs = [c for c in version.input_columns if c in frame.columns]
    return frame[inputs] if inputs else frame.drop(columns=[version.target_column], errors="ignore")


def prediction_kind(task: str) -> str:
    return drift.CATEGORICAL if task == Task.MULTICLASS else drift.NUMERICAL


def predicted_values(version: ModelVersion, frame: pd.DataFrame) -> tuple[pd.Series, np.ndarray | None, np.ndarray]:
    """What drift compares for the model's output (positive-class probability, class or value),
    plus the probabilities and labels, scored by the worker's copy of the model."""
    from scoring.cache import predictor_for

    predictor = predictor_for(version)
    labels = np.asarray(predictor.predict(frame))
    probabilities = predictor.predict_proba(frame) if version.model.task != Task.REGRESSION else None
    task = version.model.task
    if task == Task.BINARY and probabilities is not None:
        return pd.Series(probabilities[:, 1]), probabilities, labels
    if task == Task.MULTICLASS:
        return pd.Series(labels.astype(str)), probabilities, labels
    return pd.Series(labels.astype(float)), probabilities, labels


def _claim_profile(version: ModelVersion) -> ReferenceProfile | None:
    profile_row, _ = ReferenceProfile.objects.get_or_create(version=version)
    claimed = ReferenceProfile.objects.filter(
        pk=profile_row.pk, status=ProfileStatus.PENDING, attempts__lt=PROFILE_MAX_ATTEMPTS
    ).update(attempts=F("attempts") + 1)
    return ReferenceProfile.objects.get(pk=profile_row.pk) if claimed else None


def reference_profile_compute(*, version_id: int) -> ReferenceProfile | None:
    """Worker side of a version becoming ready.

    1. claim the version's profile (pending, attempts left);
    2. read the reference data (hash checked) and keep the model's input columns;
    3. summarize and prepare every column, score the reference with the model for prediction drift;
    4. store the comparison file content-addressed and mark the profile ready, once.
    """
    version = ModelVersion.objects.select_related("model").filter(pk=version_id, status=VersionStatus.READY).first()
    if version is None:
        return None
    if not version.reference_key:
        profile_row, _ = ReferenceProfile.objects.get_or_create(version=version)
        return _profile_finish(profile_row, status=ProfileStatus.FAILED,
                               status_reason=MSG_NO_REFERENCE.format(number=version.number))
    claimed = _claim_profile(version)
    if claimed is None:
        return ReferenceProfile.objects.filter(version=version).first()
    try:
        with tempfile.TemporaryDirectory(prefix="opsportal-profile-") as tmp:
            fields = _profile_fields(version, Path(tmp))
    except Exception as exc:  # a broken file or model must fail the profile, not loop the worker
        logger.exception("reference profile of version %s failed", version_id)
        return _profile_finish(claimed, status=ProfileStatus.FAILED, status_reason=f"{type(exc).__name__}: {exc}"[:500])
    return _profile_finish(claimed, status=ProfileStatus.READY, status_reason="", **fields)


def _profile_fields(version: ModelVersion, workdir: Path) -> dict[str, Any]:
    frame = _reference_frame(version, workdir)
    columns, references = profile.build(frame)
    prediction: dict[str, Any] = {}
    try:
        sample = frame if len(frame) <= PREDICTION_SAMPLE_ROWS else frame.sample(PREDICTION_SAMPLE_ROWS, random_state=0)
        values, _, _ = predicted_values(version, sample)
        prediction, references[profile.PREDICTION] = profile.prediction_reference(values, prediction_kind(
            version.model.task))
    except Exception as exc:  # drift of inputs still works without the model's reference predictions
        prediction = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    path = workdir / "profile.npz"
    path.write_bytes(profile.dumps(references))
    blob = artifacts.blob_put(path, "monitoring-profiles")
    return {"rows": len(frame), "columns": columns, "prediction": prediction, "data_key": blob.key,
            "data_sha256": blob.sha256, "computed_at": timezone.now()}


def _profile_finish(profile_row: ReferenceProfile, **fields: Any) -> ReferenceProfile:
    with transaction.atomic():
        if not ReferenceProfile.objects.filter(pk=profile_row.pk).exclude(status=ProfileStatus.READY).update(**fields):
            return ReferenceProfile.objects.get(pk=profile_row.pk)
        profile_row.refresh_from_db()
        action = "profile.computed" if profile_row.status == ProfileStatus.READY else "profile.failed"
        audit_record(actor=None, action=action, target=profile_row.version,
                     payload={"rows": profile_row.rows, "columns": len(profile_row.columns),
                              "reason": profile_row.status_reason})
    return profile_row


def profile_references(profile_row: ReferenceProfile, workdir: Path) -> dict[str, drift.ColumnReference]:
    with artifacts.blob_local_copy(profile_row.data_key, profile_row.data_sha256, workdir) as path:
        return profile.loads(path)


# --- runs: request -----------------------------------------------------------------------------------


def _default_version(model: RegisteredModel) -> ModelVersion:
    version = (model.versions.filter(stage=Stage.PRODUCTION, status=VersionStatus.READY).first()
               or model.versions.filter(aliases__name=AliasName.CHAMPION, status=VersionStatus.READY).first()
               or model.versions.filter(status=VersionStatus.READY).order_by("-number").first())
    if version is None:
        raise MonitoringError("no_version", MSG_NO_VERSION, status=409)
    return version


def _check_version(version: ModelVersion) -> None:
    if version.status != VersionStatus.READY:
        raise MonitoringError("version_not_ready", MSG_VERSION_NOT_READY.format(number=version.number), status=409)
    if not version.reference_key:
        raise MonitoringError("no_reference", MSG_NO_REFERENCE.format(number=version.number), status=409)


def _window(model: RegisteredModel, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or timezone.now()
    hours = MonitoringSchedule.objects.filter(model=model).values_list("window_hours", flat=True).first() or 24
    start = start or end - timedelta(hours=hours)
    if start >= end:
        raise MonitoringError("validation_error", MSG_BAD_WINDOW, details={"window_start": [MSG_BAD_WINDOW]})
    return start, end


def _stored_upload(upload: Any) -> dict[str, Any]:
    with artifacts.uploaded_to_path(upload) as path:
        info = artifacts.check_dataset(path)
        blob = artifacts.blob_put(path, "monitoring-current")
    return {"current_key": blob.key, "current_sha256": blob.sha256, "current_format": info.format,
            "current_filename": getattr(upload, "name", "")[:255], "source": RunSource.UPLOAD}


def run_request(
    *,
    model: RegisteredModel,
    user: Any,
    version: ModelVersion | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    current_data: Any = None,
    trigger: str = RunTrigger.MANUAL,
    ip: str | None = None,
) -> MonitoringRun:
    """Queue one check of `version` (default: production) over a log window or an uploaded dataset."""
    version = version or _default_version(model)
    _check_version(version)
    fields: dict[str, Any] = _stored_upload(current_data) if current_data is not None else {"source": RunSource.LOG}
    if fields["source"] == RunSource.LOG:
        fields["window_start"], fields["window_end"] = _window(model, window_start, window_end)
    with transaction.atomic():
        run = MonitoringRun.objects.create(model=model, version=version, trigger=trigger, requested_by=user, **fields)
        audit_record(actor=user, action="monitoring.run_requested", target=run, ip=ip,
                     payload={"model": model.name, "version": version.number, "source": run.source,
                              "trigger": trigger, "filename": run.current_filename})
        _enqueue_run(run.pk)
    return run


def _enqueue_run(run_id: int) -> None:
    from monitoring.tasks import run_execute_task

    transaction.on_commit(lambda: run_execute_task.delay(run_id), robust=True)


# --- runs: execute (worker) --------------------------------------------------------------------------


def _claim_run(run_id: int) -> MonitoringRun | None:
    claimed = MonitoringRun.objects.filter(
        pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING], attempts__lt=RUN_MAX_ATTEMPTS
    ).update(status=RunStatus.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now())
    if claimed:
        return MonitoringRun.objects.select_related("model", "version").get(pk=run_id)
    _run_give_up(run_id)
    return None


def _run_give_up(run_id: int) -> None:
    reason = MSG_RUN_STUCK.format(n=RUN_MAX_ATTEMPTS)
    with transaction.atomic():
        if MonitoringRun.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
                                        attempts__gte=RUN_MAX_ATTEMPTS).update(
                status=RunStatus.FAILED, status_reason=reason, finished_at=timezone.now()):
            _run_failed_events(MonitoringRun.objects.select_related("model", "version").get(pk=run_id))


def _ready_profile(version: ModelVersion) -> ReferenceProfile:
    found = ReferenceProfile.objects.filter(version=version).first()
    if found is None or found.status == ProfileStatus.PENDING:
        found = reference_profile_compute(version_id=version.pk) or found
    if found is None or found.status != ProfileStatus.READY:
        reason = found.status_reason if found else MSG_NO_REFERENCE.format(number=version.number)
        raise MonitoringError("no_profile", f"The reference profile is not available: {reason}")
    return found


def _log_rows(run: MonitoringRun) -> list[tuple[Any, ...]]:
    from scoring.models import PredictionLog

    rows = (PredictionLog.objects.filter(version=run.version, created_at__gte=run.window_start,
                                         created_at__lt=run.window_end)
            .order_by("-created_at").values_list("entity_id", "features", "prediction", "probabilities", "score",
                                                  "latency_ms", "created_at"))
    return list(rows[: settings.MONITORING_MAX_ROWS])


def _upload_frame(run: MonitoringRun, workdir: Path) -> pd.DataFrame:
    from registry.sandbox import read_dataset

    with artifacts.blob_local_copy(run.current_key, run.current_sha256, workdir) as path:
        return read_dataset(str(path), run.current_format)


def run_execute(*, run_id: int) -> MonitoringRun | None:
    """Worker side of a monitoring run.

    1. claim the run (queued or re-delivered, attempts left);
    2. make sure the version's reference profile is ready (compute it now if the worker missed it);
    3. read current data: the version's logged predictions in the window, or the uploaded file;
    4. type it like the reference and check data quality; drift per feature and of predictions;
    5. realized performance (labels joined by entity id), estimated performance, service health;
    6. store per-feature rows and the figures, render Evidently's report, evaluate alert rules,
       and refresh the realized performance of earlier runs whose labels came late.
    """
    run = _claim_run(run_id)
    if run is None:
        return None
    try:
        with tempfile.TemporaryDirectory(prefix="opsportal-monitor-") as tmp:
            result = _compute(run, Path(tmp))
            result["report"] = _report(run, result, Path(tmp))
            _finish(run, result)
    except Exception as exc:  # the reason is stored and shown; the worker moves on
        logger.exception("monitoring run %s failed", run_id)
        _fail(run, exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"[:500])
        return run
    rules_evaluate(run=run)
    performance_refresh(model=run.model, version=run.version, exclude=run.pk)
    return run


class _Current:
    """The current data of one run, whichever its source."""

    def __init__(self, frame: pd.DataFrame, *, predictions: pd.Series | None = None,
                 labels: list[Any] | None = None, probabilities: np.ndarray | None = None,
                 truth: list[Any] | None = None, latencies: list[float] | None = None,
                 entity_ids: list[str] | None = None):
        self.frame, self.predictions, self.labels = frame, predictions, labels
        self.probabilities, self.truth, self.latencies, self.entity_ids = probabilities, truth, latencies, entity_ids


def _current_from_log(run: MonitoringRun) -> _Current:
    rows = _log_rows(run)
    frame = pd.DataFrame.from_records([r[1] for r in rows]) if rows else pd.DataFrame()
    task = run.model.task
    if task == Task.MULTICLASS:
        predictions = pd.Series([str(r[2]) for r in rows], dtype=object)
    else:
        predictions = pd.Series([r[4] for r in rows], dtype=float)
    probabilities = None
    classes = _classes(run.version)
    if classes and rows and all(r[3] for r in rows):
        probabilities = np.array([[r[3].get(c, 0.0) for c in classes] for r in rows], dtype=float)
    return _Current(frame, predictions=predictions, labels=[r[2] for r in rows], probabilities=probabilities,
                    latencies=[r[5] for r in rows], entity_ids=[r[0] for r in rows])


def _current_from_upload(run: MonitoringRun, workdir: Path) -> _Current:
    frame = _upload_frame(run, workdir)
    target = run.version.target_column
    truth = frame[target].tolist() if target and target in frame.columns else None
    inputs = [c for c in run.version.input_columns if c in frame.columns] or [c for c in frame.columns if c != target]
    current = _Current(frame, truth=truth)
    try:
        complete = frame[run.version.input_columns].dropna()
        if len(complete) == len(frame) and len(frame):
            current.predictions, current.probabilities, labels = predicted_values(run.version, complete)
            current.labels = labels.tolist()
    except Exception:  # unscorable rows still get drift and quality; predictions are simply absent
        logger.info("run %s: uploaded rows could not be scored", run.pk, exc_info=True)
    current.frame = frame[inputs]
    return current


def _classes(version: ModelVersion) -> list[str]:
    return [str(c) for c in version.signature.get("output", {}).get("classes", [])]


def _compute(run: MonitoringRun, workdir: Path) -> dict[str, Any]:
    profile_row = _ready_profile(run.version)
    references = profile_references(profile_row, workdir)
    prediction_reference = references.pop(profile.PREDICTION, None)
    current = _current_from_upload(run, workdir) if run.source == RunSource.UPLOAD else _current_from_log(run)
    summaries = {c["name"]: c for c in profile_row.columns}
    result: dict[str, Any] = {"profile": profile_row, "current": current, "rows": len(current.frame)}
    if not len(current.frame):
        result["service"] = _service(run, current)
        return result
    typed, findings = quality.check(current.frame, references, summaries)
    result.update(typed=typed, findings=findings, drift=drift.compare(references, typed),
                  quality=quality.overall(findings), service=_service(run, current))
    if prediction_reference is not None and current.predictions is not None and len(current.predictions):
        result["prediction_drift"] = drift.compare_column(prediction_reference, current.predictions).as_dict()
    result["estimated"] = _estimated(run, current)
    result["performance"] = _realized(run, current)
    return result


def _service(run: MonitoringRun, current: _Current) -> dict[str, Any]:
    if run.source != RunSource.LOG:
        return {}
    from scoring.models import ScoringJob

    failed = sum(ScoringJob.objects.filter(version=run.version, finished_at__gte=run.window_start,
                                           finished_at__lt=run.window_end).values_list("rows_failed", flat=True))
    failed += sum(1 for label in (current.labels or []) if label is None)
    hours = (run.window_end - run.window_start).total_seconds() / 3600
    return performance.service_health(current.latencies or [], failed=failed, hours=hours)


def _estimated(run: MonitoringRun, current: _Current) -> dict[str, Any]:
    task = run.model.task
    if current.probabilities is None or not len(current.probabilities):
        return {}
    if task == Task.BINARY:
        return performance.estimated_binary(current.probabilities[:, 1].tolist())
    if task == Task.MULTICLASS:
        return performance.estimated_multiclass(current.probabilities)
    return {}


def _labels_for(model: RegisteredModel, entity_ids: list[str]) -> dict[str, Any]:
    from feedback.models import Label

    wanted = {e for e in entity_ids if e}
    found: dict[str, Any] = {}
    ids = list(wanted)
    for start in range(0, len(ids), 5000):  # bounded IN lists for SQLite and PostgreSQL alike
        found.update(Label.objects.filter(model=model, entity_id__in=ids[start:start + 5000])
                     .values_list("entity_id", "label"))
    return found


def _metrics_for(task: str, version: ModelVersion, truth: list[Any], labels: list[Any],
                 probabilities: np.ndarray | None) -> dict[str, Any]:
    classes = _classes(version)
    if task == Task.BINARY and len(classes) == 2:
        score = probabilities[:, 1].tolist() if probabilities is not None else None
        return performance.binary_metrics(truth, labels, score, classes)
    if task == Task.MULTICLASS:
        return performance.multiclass_metrics(truth, labels, probabilities, classes)
    return performance.regression_metrics(truth, labels)


def _realized(run: MonitoringRun, current: _Current) -> dict[str, Any]:
    """Labels joined to this run's predictions by entity id (or the uploaded target column)."""
    if current.labels is None:
        return {}
    if current.truth is not None:
        keep = [i for i, t in enumerate(current.truth) if t is not None and not (isinstance(t, float) and np.isnan(t))]
    else:
        known = _labels_for(run.model, current.entity_ids or [])
        keep = [i for i, e in enumerate(current.entity_ids or []) if e in known and current.labels[i] is not None]
        current.truth = [known.get(e) for e in current.entity_ids or []]
    if not keep:
        return {"labelled": 0, "rows": len(current.labels)}
    truth = [current.truth[i] for i in keep]
    labels = [current.labels[i] for i in keep]
    probabilities = current.probabilities[keep] if current.probabilities is not None else None
    result = {"labelled": len(keep), "rows": len(current.labels),
              "overall": _metrics_for(run.model.task, run.version, truth, labels, probabilities)}
    result["segments"] = _segments(run, current, keep)
    return result


def _segments(run: MonitoringRun, current: _Current, keep: list[int]) -> dict[str, Any]:
    """Realized metrics per value of the first few low-cardinality categorical inputs."""
    frame = current.frame.iloc[keep].reset_index(drop=True)
    segments: dict[str, Any] = {}
    for column in [c for c in frame.columns if frame[c].dtype == object][:SEGMENT_COLUMNS]:
        values = frame[column].astype(str)
        if values.nunique() > SEGMENT_MAX_VALUES:
            continue
        per_value = {}
        for value in sorted(values.unique()):
            rows = [keep[i] for i in np.flatnonzero(values.to_numpy() == value)]
            probabilities = current.probabilities[rows] if current.probabilities is not None else None
            try:
                per_value[value] = _metrics_for(run.model.task, run.version, [current.truth[i] for i in rows],
                                                [current.labels[i] for i in rows], probabilities)
            except ValueError:  # e.g. one class only in this segment
                continue
        segments[column] = per_value
    return segments


def _finish(run: MonitoringRun, result: dict[str, Any]) -> None:
    dataset = result.get("drift")
    findings = result.get("findings", {})
    fields: dict[str, Any] = {
        "status": RunStatus.SUCCEEDED, "finished_at": timezone.now(), "rows_current": result["rows"],
        "rows_reference": result["profile"].rows, "service": result.get("service", {}),
        "prediction_drift": result.get("prediction_drift", {}), "data_quality": result.get("quality", {}),
        "performance": result.get("performance", {}), "estimated_performance": result.get("estimated", {}),
        "status_reason": "" if result["rows"] else MSG_NO_ROWS, **result.get("report", {}),
    }
    if dataset is not None:
        fields.update(columns_total=len(dataset.columns), columns_drifted=dataset.drifted_count,
                      drift_share=dataset.share, dataset_drift=dataset.drifted)
    with transaction.atomic():
        if not MonitoringRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(**fields):
            return
        FeatureDrift.objects.filter(run=run).delete()  # a re-delivered run writes its rows once
        FeatureDrift.objects.bulk_create([_feature_row(run, c, findings.get(c.column)) for c in
                                          (dataset.columns if dataset else [])])
        run.refresh_from_db()
        audit_record(actor=None, action="monitoring.run_finished", target=run,
                     payload={"rows": run.rows_current, "drift_share": run.drift_share,
                              "dataset_drift": run.dataset_drift})


def _feature_row(run: MonitoringRun, column: drift.ColumnDrift, found: quality.ColumnQuality | None) -> FeatureDrift:
    score = column.score if np.isfinite(column.score) else None
    extra: dict[str, Any] = {}
    if found is not None:
        extra = {"missing_reference": found.missing_reference, "missing_current": found.missing_current,
                 "out_of_range": found.out_of_range, "type_errors": found.type_errors,
                 "unseen_categories": _json_safe(found.unseen_listed()), "unseen_count": found.unseen_count}
    return FeatureDrift(run=run, column=column.column[:200], kind=column.kind, method=column.method,
                        method_label=column.method_label, threshold=column.threshold, score=score,
                        drifted=column.drifted, reference_rows=column.reference_rows,
                        current_rows=column.current_rows, **extra)


def _json_safe(value: Any) -> Any:
    return _json.loads(_json.dumps(value, default=str))


def _report(run: MonitoringRun, result: dict[str, Any], workdir: Path) -> dict[str, str]:
    """Evidently's HTML for people, stored before the run is marked finished; a failure never fails the run."""
    if "typed" not in result:
        return {}
    try:
        references = {c["name"]: c["kind"] for c in result["profile"].columns}
        reference = _reference_frame(run.version, workdir)
        path = reports.render(reference, result["typed"], references)
        blob = reports.store(path)
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except Exception as exc:  # Evidently's own limits (e.g. an empty column) leave the verdicts intact
        logger.exception("report of run %s failed", run.pk)
        return {"report_key": "", "report_error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"report_key": blob.key, "report_error": ""}


def _fail(run: MonitoringRun, reason: str) -> None:
    with transaction.atomic():
        if MonitoringRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED, status_reason=reason, finished_at=timezone.now()):
            run.refresh_from_db()
            _run_failed_events(run)


def _run_failed_events(run: MonitoringRun) -> None:
    audit_record(actor=None, action="monitoring.run_failed", target=run, payload={"reason": run.status_reason})
    recipients = alert_recipients(run.model) + ([run.requested_by] if run.requested_by else [])
    notify(event="monitoring.run_failed", title=f"Monitoring run #{run.pk} of {run.model.name} failed",
           body=run.status_reason, url=f"/monitoring/runs/{run.pk}/", recipients=recipients,
           payload={"run": run.pk, "model": run.model.name, "reason": run.status_reason})


def runs_reconcile(*, now: datetime | None = None) -> int:
    """Re-enqueue runs whose worker died (running too long) or whose message was lost (queued too long)."""
    cutoff = (now or timezone.now()) - RUN_STALE_AFTER
    stale = list(MonitoringRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
                 .filter(_stale(cutoff)).values_list("pk", flat=True)[:100])
    for run_id in stale:
        _enqueue_run(run_id)
    return len(stale)


def _stale(cutoff: datetime) -> Q:
    return Q(status=RunStatus.QUEUED, created_at__lt=cutoff) | Q(status=RunStatus.RUNNING, started_at__lt=cutoff)


# --- late labels ------------------------------------------------------------------------------------


def performance_refresh(*, model: RegisteredModel, version: ModelVersion | None = None,
                        exclude: int | None = None) -> int:
    """Recompute realized performance of recent log runs: labels often arrive days after the predictions."""
    runs = MonitoringRun.objects.filter(model=model, status=RunStatus.SUCCEEDED, source=RunSource.LOG).select_related(
        "model", "version")
    if version is not None:
        runs = runs.filter(version=version)
    if exclude is not None:
        runs = runs.exclude(pk=exclude)
    updated = 0
    for run in runs.order_by("-created_at")[:PERFORMANCE_REFRESH_RUNS]:
        realized = _realized(run, _current_from_log(run))
        if realized.get("labelled", 0) != run.performance.get("labelled", 0):
            MonitoringRun.objects.filter(pk=run.pk).update(performance=realized)
            updated += 1
    return updated


# --- schedules -----------------------------------------------------------------------------------------


SCHEDULED_TASK = "monitoring.tasks.scheduled_runs"


def _periodic_task_name(model: RegisteredModel) -> str:
    return f"monitoring: {model.name} (#{model.pk})"


def schedule_set(*, model: RegisteredModel, user: Any, every_hours: int = 24, window_hours: int = 24,
                 enabled: bool = True, ip: str | None = None) -> MonitoringSchedule:
    """Create or change a model's schedule and the django-celery-beat entry behind it."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if not (1 <= every_hours <= 720 and 1 <= window_hours <= 2160):
        raise MonitoringError("validation_error", MSG_SCHEDULE_RANGE, details={"every_hours": [MSG_SCHEDULE_RANGE]})
    with transaction.atomic():
        schedule, created = MonitoringSchedule.objects.select_for_update().get_or_create(model=model)
        before = {"every_hours": schedule.every_hours, "window_hours": schedule.window_hours,
                  "enabled": schedule.enabled}
        interval, _ = IntervalSchedule.objects.get_or_create(every=every_hours, period=IntervalSchedule.HOURS)
        task = schedule.periodic_task or PeriodicTask(name=_periodic_task_name(model), task=SCHEDULED_TASK)
        task.interval, task.enabled, task.args = interval, enabled, _json.dumps([model.pk])
        task.save()
        schedule.every_hours, schedule.window_hours, schedule.enabled = every_hours, window_hours, enabled
        schedule.periodic_task, schedule.updated_by = task, user
        schedule.save()
        after = {"every_hours": every_hours, "window_hours": window_hours, "enabled": enabled}
        if created or before != after:
            audit_record(actor=user, action="monitoring.schedule_set", target=model, ip=ip,
                         payload={"before": None if created else before, "after": after})
    return schedule


def live_versions(model: RegisteredModel) -> list[ModelVersion]:
    """Production and challenger (shadow or canary) versions: what scheduled runs check."""
    found = {v.pk: v for v in model.versions.filter(stage=Stage.PRODUCTION, status=VersionStatus.READY)}
    for alias in model.aliases.select_related("version").filter(version__status=VersionStatus.READY):
        found.setdefault(alias.version_id, alias.version)
    return [v for v in found.values() if v.reference_key]


def scheduled_runs(*, model_id: int) -> list[MonitoringRun]:
    """One run per live version, unless that version's previous scheduled run is still going."""
    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is None:
        return []
    started = []
    for version in live_versions(model):
        busy = MonitoringRun.objects.filter(version=version, trigger=RunTrigger.SCHEDULE,
                                            status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists()
        if not busy:
            started.append(run_request(model=model, user=None, version=version, trigger=RunTrigger.SCHEDULE))
    return started


def defaults_ensure() -> int:
    """Every model with a production version gets a daily schedule and the default alert rules, once."""
    count = 0
    production = RegisteredModel.objects.filter(versions__stage=Stage.PRODUCTION).distinct()
    for model in production.filter(monitoring_schedule__isnull=True):
        schedule_set(model=model, user=None)
        count += 1
    for model in production.filter(alert_rules__isnull=True):
        rules_create_defaults(model=model)
    return count


# --- alert rules ---------------------------------------------------------------------------------------

COMMON_RULES = [
    (RuleMetric.DRIFT_SHARE, Comparison.GTE, 0.5, 1, Severity.WARNING),
    (RuleMetric.PREDICTION_DRIFT, Comparison.GTE, 1.0, 2, Severity.WARNING),
    (RuleMetric.MISSING_INCREASE, Comparison.GT, 0.2, 1, Severity.WARNING),
    (RuleMetric.UNSEEN_SHARE, Comparison.GT, 0.05, 1, Severity.WARNING),
    (RuleMetric.TYPE_ERROR_SHARE, Comparison.GT, 0.01, 1, Severity.WARNING),
    (RuleMetric.ERROR_RATE, Comparison.GT, 0.05, 1, Severity.CRITICAL),
    (RuleMetric.LATENCY_P95, Comparison.GT, 500.0, 2, Severity.WARNING),
]
TASK_RULES = {
    Task.BINARY: [(RuleMetric.AUC, Comparison.LT, 0.6, 1, Severity.CRITICAL),
                  (RuleMetric.ESTIMATED_AUC, Comparison.LT, 0.6, 2, Severity.WARNING)],
    Task.MULTICLASS: [(RuleMetric.ACCURACY, Comparison.LT, 0.5, 1, Severity.CRITICAL)],
    Task.REGRESSION: [(RuleMetric.R2, Comparison.LT, 0.0, 1, Severity.CRITICAL)],
}
CLASSIFIER_METRICS = {RuleMetric.AUC, RuleMetric.ACCURACY, RuleMetric.F1, RuleMetric.ESTIMATED_AUC,
                      RuleMetric.ESTIMATED_ACCURACY}
REGRESSION_METRICS = {RuleMetric.MAE, RuleMetric.RMSE, RuleMetric.R2}
RULE_KINDS = {RuleMetric.DRIFT_SHARE: AlertKind.DRIFT, RuleMetric.PREDICTION_DRIFT: AlertKind.DRIFT,
              RuleMetric.ERROR_RATE: AlertKind.SERVICE, RuleMetric.LATENCY_P95: AlertKind.SERVICE,
              RuleMetric.VOLUME: AlertKind.SERVICE}


def rules_create_defaults(*, model: RegisteredModel) -> list[AlertRule]:
    specs = COMMON_RULES + TASK_RULES.get(Task(model.task), [])
    with transaction.atomic():
        rules = [AlertRule.objects.create(model=model, metric=metric, comparison=comparison, threshold=threshold,
                                          window_runs=window, severity=severity)
                 for metric, comparison, threshold, window, severity in specs]
        audit_record(actor=None, action="monitoring.rules_defaulted", target=model, payload={"rules": len(rules)})
    return rules


def _check_rule_metric(model: RegisteredModel, metric: str) -> None:
    wrong = REGRESSION_METRICS if model.task != Task.REGRESSION else CLASSIFIER_METRICS
    if metric in wrong:
        message = MSG_RULE_METRIC.format(task=model.get_task_display().lower())
        raise MonitoringError("validation_error", message, details={"metric": [message]})


def rule_create(*, model: RegisteredModel, user: Any, metric: str, comparison: str, threshold: float,
                window_runs: int = 1, severity: str = Severity.WARNING, ip: str | None = None) -> AlertRule:
    _check_rule_metric(model, metric)
    with transaction.atomic():
        rule = AlertRule.objects.create(model=model, metric=metric, comparison=comparison, threshold=threshold,
                                        window_runs=window_runs, severity=severity, created_by=user)
        audit_record(actor=user, action="monitoring.rule_created", target=rule, ip=ip,
                     payload={"metric": metric, "comparison": comparison, "threshold": threshold,
                              "window_runs": window_runs, "severity": severity})
    return rule


def rule_delete(*, rule: AlertRule, user: Any, ip: str | None = None) -> None:
    with transaction.atomic():
        audit_record(actor=user, action="monitoring.rule_deleted", target=rule, ip=ip,
                     payload={"metric": rule.metric, "threshold": rule.threshold})
        alert_clear(model=rule.model, key=rule.key, reason="The rule was deleted.")
        rule.delete()


def metric_value(run: MonitoringRun, metric: str) -> float | None:
    """The figure a rule compares, or None when the run has none (e.g. no labels yet)."""
    realized = run.performance.get("overall", {})
    values: dict[str, Any] = {
        RuleMetric.DRIFT_SHARE: run.drift_share,
        RuleMetric.PREDICTION_DRIFT: (float(run.prediction_drift["drifted"]) if run.prediction_drift else None),
        RuleMetric.ESTIMATED_AUC: run.estimated_performance.get("auc"),
        RuleMetric.ESTIMATED_ACCURACY: run.estimated_performance.get("accuracy"),
        RuleMetric.ERROR_RATE: run.service.get("error_rate"),
        RuleMetric.LATENCY_P95: run.service.get("latency_p95_ms"),
        RuleMetric.VOLUME: run.service.get("volume"),
    }
    if metric in (RuleMetric.MISSING_INCREASE, RuleMetric.UNSEEN_SHARE, RuleMetric.OUT_OF_RANGE_SHARE,
                  RuleMetric.TYPE_ERROR_SHARE):
        return (run.data_quality.get(metric) or {}).get("value")
    if metric in values:
        return values[metric]
    return realized.get(metric)


COMPARE = {Comparison.GT: lambda a, b: a > b, Comparison.GTE: lambda a, b: a >= b,
           Comparison.LT: lambda a, b: a < b, Comparison.LTE: lambda a, b: a <= b}


def _breaches(rule: AlertRule, runs: list[MonitoringRun]) -> bool | None:
    values = [metric_value(r, rule.metric) for r in runs]
    if len(values) < rule.window_runs or any(v is None for v in values):
        return None if values and values[0] is None else False
    return all(COMPARE[Comparison(rule.comparison)](float(v), rule.threshold) for v in values)


def rules_evaluate(*, run: MonitoringRun) -> dict[int, bool | None]:
    """Open an alert for each rule the latest runs breach; resolve those that no longer do."""
    outcome: dict[int, bool | None] = {}
    recent = list(MonitoringRun.objects.filter(version=run.version, status=RunStatus.SUCCEEDED)
                  .order_by("-created_at", "-id")[:20])
    for rule in AlertRule.objects.filter(model=run.model, enabled=True):
        breached = _breaches(rule, recent[: rule.window_runs])
        outcome[rule.pk] = breached
        if breached:
            value = metric_value(run, rule.metric)
            title = f"{rule.get_metric_display()} {rule.get_comparison_display()} {rule.threshold:g} (now {value:.4g})"
            alert_raise(model=run.model, key=rule.key, kind=RULE_KINDS.get(rule.metric, _rule_kind(rule)),
                        severity=rule.severity, title=title, version=run.version,
                        detail=f"Monitoring run #{run.pk} of version {run.version.number}: "
                               f"{rule.get_metric_display()} is {value:.4g} over {rule.window_runs} run(s).")
        elif breached is False:
            alert_clear(model=run.model, key=rule.key, reason=f"Monitoring run #{run.pk}: the condition cleared.")
    return outcome


def _rule_kind(rule: AlertRule) -> str:
    if rule.metric in (RuleMetric.MISSING_INCREASE, RuleMetric.UNSEEN_SHARE, RuleMetric.OUT_OF_RANGE_SHARE,
                       RuleMetric.TYPE_ERROR_SHARE):
        return AlertKind.DATA_QUALITY
    return AlertKind.PERFORMANCE

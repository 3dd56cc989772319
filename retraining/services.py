"""Retraining writes: recipes and their schedules, triggers, and runs.

One run at a time per model is enforced by the database (a partial unique constraint
on queued/running runs), so overlapping triggers — two beat schedulers, an alert
during a scheduled run, a person clicking twice — give one run; the others are skipped
and noted in the active run's log.

Who acts for a run: the recipe's owner (the person who last saved it). The challenger is
registered and its promotion requested in their name, so the four-eyes rule keeps them
from approving it; approvers decide. Automatic promotion happens only when the model's
own approval policy switches it on, every gate passes and the challenger is not worse.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from accounts.services import audit_record
from opsportal.errors import DomainError
from registry import artifacts, gates, promotions
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import (
    ApprovalPolicy,
    GatesStatus,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
    RequestStatus,
    VersionStatus,
)
from retraining import recipes, training
from retraining.models import (
    ACTIVE_STATUSES,
    DataSource,
    RecipeKind,
    RetrainingRun,
    RunStatus,
    TrainingRecipe,
    Trigger,
)

ALERT_KEY = "retraining-failed"
SCHEDULE_TASK = "retraining.tasks.retraining_scheduled"
# Two beat schedulers send the same tick within seconds; a scheduled run created this recently
# means the tick was already taken (cron fires at most once a minute).
SCHEDULE_TICK_SECONDS = 50
MAX_ATTEMPTS = 2
ALERT_KINDS = ("drift", "performance", "uplift")

MSG_NO_RECIPE = "This model has no training recipe yet: set one up on its retraining page first."
MSG_RUN_IN_PROGRESS = "Run #{pk} is already in progress for this model; a second one was not started."
MSG_DISABLED = "The recipe is switched off: automatic triggers do not start runs."
MSG_CRON = "Give five crontab fields (minute hour day-of-month month day-of-week), e.g. “0 3 * * 1”."
MSG_CRON_INVALID = "This schedule is not valid: {error}"
MSG_TARGET_REQUIRED = "Name the target column (the true outcome the model predicts)."
MSG_DATASET_REQUIRED = "Upload a training dataset (CSV or Parquet), or train on logged predictions."
MSG_FUNCTION_REQUIRED = "Choose a registered training function."
MSG_HOLDOUT_FRACTION = "The held-out share must be between 0.05 and 0.5."
MSG_WINDOW = "The window must be between 1 and 3650 days."
MSG_NEW_LABELS = "Give a number of new labels of at least 1, or leave it empty."
MSG_STALE = "The worker running this run stopped without finishing it (no update within the time limit)."
MSG_TIME_LIMIT = "The run took longer than the training time limit ({seconds} s) and was stopped."
MSG_RECIPE_GONE = "The model's recipe was deleted before the run started."
MSG_NOT_EVALUATED = "The challenger could not be scored on the held-out rows: {reason}"
MSG_NOT_VALID = "The challenger v{number} failed validation: {reason}"
MSG_UNEXPECTED = "The run stopped on an unexpected error ({kind}); the worker log has the details."


class RetrainingError(DomainError):
    """A retraining rule said no."""


# --- recipes ---------------------------------------------------------------------------------


@dataclass
class RecipeInput:
    target_column: str
    kind: str = RecipeKind.BUILTIN
    estimator: str = ""
    hyperparameters: dict[str, Any] | None = None
    function_path: str = ""
    data_source: str = DataSource.DATASET
    window_days: int = 90
    split_column: str = ""
    split_cutoff: datetime | None = None
    holdout_fraction: float = 0.2
    trigger_on_drift: bool = False
    trigger_on_performance: bool = False
    trigger_on_uplift: bool = False
    trigger_new_labels: int | None = None
    cron: str = ""
    promotion_target: str = "production"
    enabled: bool = True


def _invalid(field: str, message: str) -> RetrainingError:
    return RetrainingError("validation_error", message, details={field: [message]})


def _checked_recipe(model: RegisteredModel, data: RecipeInput) -> RecipeInput:
    if not data.target_column.strip():
        raise _invalid("target_column", MSG_TARGET_REQUIRED)
    if data.kind == RecipeKind.FUNCTION:
        if not data.function_path:
            raise _invalid("function_path", MSG_FUNCTION_REQUIRED)
        recipes.training_function(data.function_path)
        recipes.check_function_parameters(data.hyperparameters or {})
    else:
        recipes.check_hyperparameters(data.estimator, model.task, data.hyperparameters or {})
    if not 0.05 <= data.holdout_fraction <= 0.5:
        raise _invalid("holdout_fraction", MSG_HOLDOUT_FRACTION)
    if not 1 <= data.window_days <= 3650:
        raise _invalid("window_days", MSG_WINDOW)
    if data.trigger_new_labels is not None and data.trigger_new_labels < 1:
        raise _invalid("trigger_new_labels", MSG_NEW_LABELS)
    cron_fields(data.cron)
    return data


def cron_fields(cron: str) -> dict[str, str] | None:
    """The five crontab fields by name (None for no schedule), checked by Celery's own parser."""
    from celery.schedules import crontab

    parts = cron.split()
    if not parts:
        return None
    if len(parts) != 5:
        raise _invalid("cron", MSG_CRON)
    fields = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts, strict=True))
    try:
        crontab(**fields)
    except (ValueError, TypeError) as error:
        raise _invalid("cron", MSG_CRON_INVALID.format(error=error)) from None
    return fields


def _stored_dataset(upload: Any, target: str) -> tuple[artifacts.Blob, str, str]:
    with artifacts.uploaded_to_path(upload) as path:
        info = artifacts.check_dataset(path, target_column=target)
        return artifacts.blob_put(path, "datasets"), info.format, getattr(upload, "name", "")[:255]


def _check_stored_header(recipe: TrainingRecipe) -> None:
    """A changed target column must exist in the dataset already stored."""
    with tempfile.TemporaryDirectory(prefix="opsportal-recipe-") as tmp, artifacts.blob_local_copy(
        recipe.dataset_key, recipe.dataset_sha256, Path(tmp)
    ) as path:
        artifacts.check_dataset(path, target_column=recipe.target_column)


def recipe_save(
    *, model: RegisteredModel, user: Any, data: RecipeInput, dataset: Any = None, ip: str | None = None
) -> TrainingRecipe:
    """Create or change the model's recipe (validated), store an uploaded dataset, set the schedule."""
    data = _checked_recipe(model, data)
    blob = _stored_dataset(dataset, data.target_column) if dataset is not None else None
    with transaction.atomic():
        recipe = TrainingRecipe.objects.select_for_update().filter(model=model).first()
        before = _snapshot(recipe) if recipe else {}
        recipe = recipe or TrainingRecipe(model=model, owner=user)
        for field, value in vars(data).items():
            setattr(recipe, field, value)
        recipe.hyperparameters = data.hyperparameters or {}
        recipe.owner = user
        if blob is not None:
            stored, fmt, filename = blob
            recipe.dataset_key, recipe.dataset_sha256, recipe.dataset_format = stored.key, stored.sha256, fmt
            recipe.dataset_filename = filename
        _check_source(recipe, changed_target=before.get("target_column") != recipe.target_column and blob is None)
        recipe.save()
        _schedule_set(recipe)
        audit_record(actor=user, action="retraining.recipe_saved", target=model, ip=ip,
                     payload={"before": before, "after": _snapshot(recipe)})
    return recipe


def _check_source(recipe: TrainingRecipe, *, changed_target: bool) -> None:
    if recipe.data_source != DataSource.DATASET:
        return
    if not recipe.dataset_key:
        raise _invalid("dataset", MSG_DATASET_REQUIRED)
    if changed_target:
        _check_stored_header(recipe)


def _snapshot(recipe: TrainingRecipe) -> dict[str, Any]:
    fields = ("kind", "estimator", "hyperparameters", "function_path", "data_source", "dataset_sha256",
              "dataset_filename", "window_days", "target_column", "split_column", "split_cutoff", "holdout_fraction",
              "trigger_on_drift", "trigger_on_performance", "trigger_on_uplift", "trigger_new_labels", "cron",
              "promotion_target", "enabled")
    snapshot = {f: getattr(recipe, f) for f in fields}
    snapshot["split_cutoff"] = recipe.split_cutoff.isoformat() if recipe.split_cutoff else None
    snapshot["owner"] = recipe.owner.get_username() if recipe.owner_id else None
    return snapshot


def _schedule_set(recipe: TrainingRecipe) -> None:
    """Keep the django-celery-beat entry in step with the recipe's cron (saved through the model, so
    running beat schedulers notice the change)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    fields = cron_fields(recipe.cron)
    task = recipe.schedule
    if fields is None:
        if task is not None:
            recipe.schedule = None
            recipe.save(update_fields=["schedule"])
            task.delete()
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=settings.TIME_ZONE)
    name = f"retraining: {recipe.model.name}"
    task = task or PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name, task=SCHEDULE_TASK)
    task.crontab, task.args, task.enabled = crontab, json.dumps([recipe.pk]), recipe.enabled
    task.description = f"Scheduled retraining of {recipe.model.name} (edit it on the model's retraining page)."
    task.save()
    if recipe.schedule_id != task.pk:
        recipe.schedule = task
        recipe.save(update_fields=["schedule"])


# --- starting runs ------------------------------------------------------------------------------


def run_start(
    *, model: RegisteredModel, trigger: str, user: Any = None, detail: str = "", alert: Any = None,
    ip: str | None = None,
) -> RetrainingRun:
    """Queue a run, unless one is queued or running for the model (409, naming it)."""
    recipe = TrainingRecipe.objects.filter(model=model).first()
    if recipe is None:
        raise RetrainingError("no_recipe", MSG_NO_RECIPE, status=409)
    if not recipe.enabled and trigger not in (Trigger.MANUAL, Trigger.API):
        raise RetrainingError("recipe_disabled", MSG_DISABLED, status=409)
    try:
        with transaction.atomic():
            if trigger == Trigger.SCHEDULE:
                _refuse_taken_tick(recipe)
            run = RetrainingRun.objects.create(model=model, recipe=recipe, trigger=trigger, trigger_detail=detail[:300],
                                               alert=alert, requested_by=user if user is not None else None)
            audit_record(actor=user, action="retraining.run_queued", target=run, ip=ip,
                         payload={"model": model.name, "trigger": trigger, "detail": detail[:300]})
            transaction.on_commit(lambda: _enqueue(run.pk))
    except IntegrityError:
        active = RetrainingRun.objects.filter(model=model, status__in=ACTIVE_STATUSES).first()
        pk = active.pk if active else None
        raise RetrainingError("run_in_progress", MSG_RUN_IN_PROGRESS.format(pk=pk), status=409,
                              details={"run": pk}) from None
    return run


def _refuse_taken_tick(recipe: TrainingRecipe) -> None:
    since = timezone.now() - timedelta(seconds=SCHEDULE_TICK_SECONDS)
    taken = RetrainingRun.objects.filter(model_id=recipe.model_id, trigger=Trigger.SCHEDULE, created_at__gte=since)
    latest = taken.order_by("-created_at").first()
    if latest is not None:
        raise RetrainingError("run_in_progress", MSG_RUN_IN_PROGRESS.format(pk=latest.pk), status=409,
                              details={"run": latest.pk})


def _enqueue(run_id: int) -> None:
    from retraining.tasks import run_execute_task

    run_execute_task.delay(run_id)


def _start_automatically(model: RegisteredModel, trigger: str, detail: str, alert: Any = None) -> RetrainingRun | None:
    """A trigger fired: start a run, or note in the active run's log that this one was skipped."""
    try:
        return run_start(model=model, trigger=trigger, detail=detail, alert=alert)
    except RetrainingError as error:
        active = error.details.get("run")
        if active:
            _log(active, f"{Trigger(trigger).label} trigger ({detail}) skipped: this run was already taking it.")
        return None


def retraining_trigger_on_alert(*, alert_id: int) -> RetrainingRun | None:
    """An alert opened: start a run when the model's recipe asks for alerts of its kind.

    Retraining's own failure alerts never trigger runs (that would loop).
    """
    from monitoring.models import Alert, AlertStatus

    alert = Alert.objects.select_related("model").filter(pk=alert_id).first()
    if alert is None or alert.kind not in ALERT_KINDS or alert.status == AlertStatus.RESOLVED:
        return None
    recipe = TrainingRecipe.objects.filter(model=alert.model, enabled=True).first()
    if recipe is None or alert.kind not in recipe.alert_kinds:
        return None
    return _start_automatically(alert.model, Trigger.ALERT, f"{alert.get_kind_display()}: {alert.title}", alert)


def retraining_scheduled(*, recipe_id: int) -> RetrainingRun | None:
    recipe = TrainingRecipe.objects.select_related("model").filter(pk=recipe_id, enabled=True).first()
    if recipe is None:
        return None
    return _start_automatically(recipe.model, Trigger.SCHEDULE, f"cron “{recipe.cron}”")


def labels_check() -> list[int]:
    """Beat: start runs for recipes with at least N labels created since the model's last run."""
    from feedback.models import Label

    started = []
    for recipe in TrainingRecipe.objects.filter(enabled=True, trigger_new_labels__isnull=False).select_related("model"):
        last = recipe.model.retraining_runs.order_by("-created_at").values_list("created_at", flat=True).first()
        since = last or recipe.created_at
        fresh = Label.objects.filter(model=recipe.model, created_at__gt=since).count()
        if fresh >= recipe.trigger_new_labels:
            run = _start_automatically(recipe.model, Trigger.LABELS, f"{fresh} new labels since {since:%Y-%m-%d %H:%M}")
            if run is not None:
                started.append(run.pk)
    return started


def runs_reconcile() -> int:
    """Beat: fail runs whose worker vanished (running past the training time limit, or queued for a day)."""
    now = timezone.now()
    running_cutoff = now - timedelta(seconds=settings.CELERY_TRAINING_TIME_LIMIT + 300)
    stale = RetrainingRun.objects.filter(
        Q(status=RunStatus.RUNNING, started_at__lt=running_cutoff)
        | Q(status=RunStatus.QUEUED, created_at__lt=now - timedelta(days=1))
    )
    return sum(1 for run in stale if _fail(run, MSG_STALE, from_statuses=ACTIVE_STATUSES))


# --- the run (worker) ----------------------------------------------------------------------------


def _log(run_id: int, message: str) -> None:
    """Append one line to the run's live log (read by the run page while it polls)."""
    line = f"{timezone.now():%H:%M:%S} {message}\n"
    RetrainingRun.objects.filter(pk=run_id).update(log=Concat(F("log"), Value(line)))


def _claim(run_id: int) -> RetrainingRun | None:
    """queued → running; a run still "running" is taken again only when its worker died (redelivery)."""
    claimed = RetrainingRun.objects.filter(pk=run_id, status__in=ACTIVE_STATUSES, attempts__lt=MAX_ATTEMPTS).update(
        status=RunStatus.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now()
    )
    if not claimed:
        run = RetrainingRun.objects.filter(pk=run_id, status__in=ACTIVE_STATUSES).first()
        if run is not None:
            _fail(run, MSG_STALE, from_statuses=ACTIVE_STATUSES)
        return None
    return RetrainingRun.objects.select_related("model__team", "recipe__owner").get(pk=run_id)


def run_execute(*, run_id: int) -> None:
    """Worker side of a run.

    1. claim the run; 2. assemble, check and time-split the rows, fingerprint them;
    3. train the recipe's estimator or function; 4. score challenger and champion on the same
    held-out rows in the sandbox (the comparison); 5. register the challenger (parent = champion)
    and validate it here; 6. evaluate the policy's gates on the comparison and, when they pass,
    open a promotion request (and promote only if the model's policy says so and it is not worse).
    Any refusal fails the run with its reason and raises a `retraining` alert; the champion is
    never touched by a failure.
    """
    run = _claim(run_id)
    if run is None:
        return
    _log(run.pk, f"Run started (attempt {run.attempts}), trigger: {run.get_trigger_display()}"
                 + (f" — {run.trigger_detail}" if run.trigger_detail else ""))
    try:
        _execute(run)
    except training.TrainingFailed as failure:
        _fail(run, str(failure))
    except DomainError as error:
        _fail(run, error.message)
    except SoftTimeLimitExceeded:
        _fail(run, MSG_TIME_LIMIT.format(seconds=settings.CELERY_TRAINING_TIME_LIMIT))
    except Exception as error:  # the reason people see; the traceback goes to the worker log
        _fail(run, MSG_UNEXPECTED.format(kind=type(error).__name__))
        raise


def _execute(run: RetrainingRun) -> None:
    recipe = run.recipe
    if recipe is None:
        raise training.TrainingFailed(MSG_RECIPE_GONE)
    model = run.model
    champion = registry_selectors.production_version(model)
    shape = champion or model.versions.filter(status=VersionStatus.READY).order_by("-number").first()
    RetrainingRun.objects.filter(pk=run.pk).update(recipe_snapshot=_snapshot(recipe), champion=champion)
    _log(run.pk, f"Champion: v{champion.number}" if champion else "No version in production: nothing to beat.")
    with tempfile.TemporaryDirectory(prefix="opsportal-retrain-") as tmp:
        workdir = Path(tmp)
        prepared = training.prepare(recipe, shape.signature if shape else None, workdir)
        RetrainingRun.objects.filter(pk=run.pk).update(
            data_fingerprint=prepared.fingerprint, training_rows=len(prepared.train),
            holdout_rows=len(prepared.holdout))
        _log(run.pk, f"Data: {prepared.description} Fingerprint sha256 {prepared.fingerprint[:16]}…")
        started = time.perf_counter()
        fitted = training.fit(recipe, model.task, prepared)
        _log(run.pk, f"Trained {_what(recipe)} in {time.perf_counter() - started:.1f} s.")
        paths = _write(fitted, prepared, workdir)
        comparison = _compare(run, recipe, paths, champion, model)
        version = _register(run, recipe, paths, prepared, comparison, champion)
    _validate(run, version)
    _gates_and_promotion(run, recipe, version, comparison, champion, prepared)


def _what(recipe: TrainingRecipe) -> str:
    if recipe.kind == RecipeKind.FUNCTION:
        return f"function {recipe.function_path}"
    return recipe.estimator + (f" {json.dumps(recipe.hyperparameters)}" if recipe.hyperparameters else "")


def _write(fitted: Any, prepared: training.Prepared, workdir: Path) -> dict[str, Path]:
    import skops.io as sio

    paths = {"artifact": workdir / "challenger.skops", "holdout": workdir / "holdout.csv"}
    sio.dump(fitted, paths["artifact"])
    prepared.holdout.to_csv(paths["holdout"], index=False)
    return paths


def _compare(run: RetrainingRun, recipe: TrainingRecipe, paths: dict[str, Path], champion: ModelVersion | None,
             model: RegisteredModel) -> dict[str, Any]:
    """Challenger and champion scored by the sandbox on the same held-out rows, in the gates' format."""
    policy = registry_selectors.policy_for(model)
    with ExitStack() as stack:
        specs = [{"key": "candidate", "artifact_path": str(paths["artifact"]), "format": "skops",
                  "accept_version_mismatch": False}]
        if champion is not None:
            (paths["artifact"].parent / "champion").mkdir(exist_ok=True)
            path = stack.enter_context(artifacts.blob_local_copy(
                champion.artifact_key, champion.artifact_sha256, paths["artifact"].parent / "champion"))
            specs.append({"key": "champion", "artifact_path": str(path), "format": champion.format,
                          "accept_version_mismatch": champion.version_mismatch_accepted_by_id is not None})
        job = {"mode": "evaluate", "task": model.task, "models": specs, "data_path": str(paths["holdout"]),
               "data_format": "csv", "target_column": recipe.target_column,
               "trusted": registry_selectors.trusted_type_names(), "fairness": policy.gates.get("fairness")}
        sandbox_dir = paths["artifact"].parent / "sandbox"
        sandbox_dir.mkdir(exist_ok=True)
        outcome = registry_services.run_sandbox(job, sandbox_dir)
    if outcome.get("outcome") != "evaluated":
        raise training.TrainingFailed(MSG_NOT_EVALUATED.format(reason=outcome.get("reason", outcome)))
    comparison = {**outcome, "data": f"the {outcome['rows']} rows held out by retraining run #{run.pk}",
                  **verdict(model.task, outcome, champion)}
    RetrainingRun.objects.filter(pk=run.pk).update(
        comparison=comparison, metrics=outcome["results"]["candidate"].get("metrics", {}))
    _log(run.pk, f"Compared on {outcome['rows']} held-out rows: {comparison['summary']}")
    return comparison


def verdict(task: str, outcome: dict[str, Any], champion: ModelVersion | None) -> dict[str, Any]:
    """Better, equal or worse than the champion on the task's primary metric."""
    metric, higher_is_better = gates.PRIMARY_METRIC[task]
    ours = (outcome["results"]["candidate"].get("metrics") or {}).get(metric)
    theirs = ((outcome["results"].get("champion") or {}).get("metrics") or {}).get(metric)
    base = {"metric": metric, "higher_is_better": higher_is_better,
            "champion_version": champion.number if champion else None}
    if champion is None or theirs is None or ours is None:
        return {**base, "verdict": "no_champion", "summary": f"{metric} {ours} (no champion to compare with)."}
    difference = ours - theirs if higher_is_better else theirs - ours
    word = "equal" if abs(difference) < 1e-9 else ("better" if difference > 0 else "worse")
    summary = f"{metric} challenger {ours:.4f} vs champion v{champion.number} {theirs:.4f}: {word}."
    return {**base, "verdict": word, "summary": summary}


def _register(run: RetrainingRun, recipe: TrainingRecipe, paths: dict[str, Path], prepared: training.Prepared,
              comparison: dict[str, Any], champion: ModelVersion | None) -> ModelVersion:
    """The challenger becomes a version in the recipe owner's name, parent = champion, linked to this run."""
    card = champion or ModelVersion(description="", intended_use="", limitations="")
    with paths["artifact"].open("rb") as artifact, paths["holdout"].open("rb") as holdout:
        upload = registry_services.VersionUpload(
            artifact=File(artifact, name="challenger.skops"), format="skops",
            reference=File(holdout, name="holdout.csv"), target_column=recipe.target_column,
            metrics=comparison["results"]["candidate"].get("metrics", {}),
            params={"retraining_run": run.pk, "recipe": _what(recipe), "hyperparameters": recipe.hyperparameters},
            description=card.description or f"Retrained by run #{run.pk}.",
            intended_use=card.intended_use, limitations=card.limitations,
            training_data_description=f"Retraining run #{run.pk}: {prepared.description} "
                                      f"Data fingerprint sha256 {prepared.fingerprint}.",
            source_code_ref=f"OpsPortal retraining recipe: {_what(recipe)}",
            parent_number=champion.number if champion else None,
        )
        with transaction.atomic():
            version = registry_services.version_register(model=run.model, user=recipe.owner, upload=upload)
            # The registry records the reference file's hash; the run's fingerprint covers every row used.
            ModelVersion.objects.filter(pk=version.pk).update(training_data_fingerprint=prepared.fingerprint)
            RetrainingRun.objects.filter(pk=run.pk).update(produced_version=version)
            audit_record(actor=None, action="retraining.version_registered", target=version,
                         payload={"run": run.pk, "parent": champion.number if champion else None})
    _log(run.pk, f"Registered v{version.number}" + (f" (parent v{champion.number})." if champion else "."))
    return version


def _validate(run: RetrainingRun, version: ModelVersion) -> None:
    """The registry's own validation (sandbox included), here rather than waiting for its queue."""
    _log(run.pk, f"Validating v{version.number} in the sandbox…")
    registry_services.version_validate(version_id=version.pk)
    version.refresh_from_db()
    if version.status == VersionStatus.VALIDATING:  # the queued validation claimed it first: wait for it
        deadline = time.monotonic() + settings.SANDBOX_TIMEOUT_SECONDS + 30
        while version.status == VersionStatus.VALIDATING and time.monotonic() < deadline:
            time.sleep(1)
            version.refresh_from_db()
    if version.status != VersionStatus.READY:
        reason = version.status_reason or "validation did not finish"
        raise training.TrainingFailed(MSG_NOT_VALID.format(number=version.number, reason=reason))
    _log(run.pk, f"v{version.number} passed validation (engine: {version.get_engine_display()}).")


def _gates_and_promotion(run: RetrainingRun, recipe: TrainingRecipe, version: ModelVersion,
                         comparison: dict[str, Any], champion: ModelVersion | None,
                         prepared: training.Prepared) -> None:
    policy = registry_selectors.policy_for(run.model)
    results = gates.evaluate(version, policy, comparison, champion)
    failing = [r for r in results if not r["passed"]]
    RetrainingRun.objects.filter(pk=run.pk).update(gate_results=results)
    if failing:
        reason = "Gates not passed, so no promotion request was opened: " + "; ".join(
            f"{r['label']} ({r['detail']})" for r in failing)
        _log(run.pk, reason)
        _succeed(run, version, reason)
        return
    request = _open_request(run, recipe, version, comparison, prepared)
    if request is None:
        return
    if _may_auto_promote(run.model, comparison) and _auto_promote(run, request, results, comparison, champion):
        _succeed(run, version, f"v{version.number} passed every gate and was promoted automatically "
                               f"(the model's policy allows it).")
        return
    _succeed(run, version, f"v{version.number} passed every gate; promotion request #{request.pk} awaits approval.")


def _open_request(run: RetrainingRun, recipe: TrainingRecipe, version: ModelVersion, comparison: dict[str, Any],
                  prepared: training.Prepared) -> PromotionRequest | None:
    justification = (
        f"Retraining run #{run.pk} ({run.get_trigger_display()}"
        + (f": {run.trigger_detail}" if run.trigger_detail else "") + f"). {prepared.description} "
        f"On the same {comparison['rows']} held-out rows: {comparison['summary']} "
        f"Comparison: /retraining/runs/{run.pk}/"
    )
    try:
        request = promotions.promotion_open(version=version, user=recipe.owner, target=recipe.promotion_target,
                                            justification=justification)
    except DomainError as error:
        _log(run.pk, f"The promotion request could not be opened: {error.message}")
        _succeed(run, version, f"v{version.number} registered; the promotion request could not be opened: "
                               f"{error.message}")
        return None
    RetrainingRun.objects.filter(pk=run.pk).update(promotion_request=request)
    _log(run.pk, f"Promotion request #{request.pk} to {request.target} opened in {recipe.owner.get_username()}'s "
                 f"name, with the comparison attached.")
    return request


def _may_auto_promote(model: RegisteredModel, comparison: dict[str, Any]) -> bool:
    """Only the model's own policy can switch it on (the default policy never does), and never for
    a challenger that scored worse than the champion."""
    switched_on = ApprovalPolicy.objects.filter(model=model, auto_promote=True).exists()
    return switched_on and comparison.get("verdict") in ("better", "equal", "no_champion")


def _auto_promote(run: RetrainingRun, request: PromotionRequest, results: list[dict[str, Any]],
                  comparison: dict[str, Any], champion: ModelVersion | None) -> bool:
    reason = f"Promoted automatically after retraining run #{run.pk}: every gate passed and the model's policy " \
             f"allows automatic promotion."
    with transaction.atomic():
        PromotionRequest.objects.filter(pk=request.pk, status=RequestStatus.OPEN).update(
            gate_results=results, gates_at_open=results, gates_status=GatesStatus.PASSED, evaluation=comparison,
            gates_evaluated_at=timezone.now(), champion_at_evaluation=champion)
        if not promotions.promotion_auto_approve(request=request, reason=reason, payload={"run": run.pk}):
            return False
        RetrainingRun.objects.filter(pk=run.pk).update(auto_promoted=True)
    _log(run.pk, f"v{request.version.number} promoted to {request.target} automatically.")
    return True


# --- outcomes -----------------------------------------------------------------------------------------


def _recipients(run: RetrainingRun) -> list[Any]:
    people = [*run.model.owners.filter(is_active=True)]
    if run.recipe is not None:
        people.append(run.recipe.owner)
    if run.requested_by is not None:
        people.append(run.requested_by)
    return people


def _succeed(run: RetrainingRun, version: ModelVersion, reason: str) -> None:
    from accounts.notifications import notify
    from monitoring.services import alert_clear

    with transaction.atomic():
        if not RetrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.SUCCEEDED, status_reason=reason, finished_at=timezone.now()
        ):
            return
        audit_record(actor=None, action="retraining.run_succeeded", target=run,
                     payload={"model": run.model.name, "version": version.number, "reason": reason})
        notify(event="retraining.finished", title=f"Retraining of {run.model.name} produced v{version.number}",
               body=reason, url=f"/retraining/runs/{run.pk}/", recipients=_recipients(run),
               payload={"run": run.pk, "model": run.model.name, "version": version.number, "reason": reason})
        alert_clear(model=run.model, key=ALERT_KEY, reason=f"Retraining run #{run.pk} succeeded.")
    _log(run.pk, "Run finished.")


def _fail(run: RetrainingRun, reason: str, *, from_statuses: tuple[str, ...] = (RunStatus.RUNNING,)) -> bool:
    """Mark the run failed (once), tell people and raise the model's retraining alert."""
    from accounts.notifications import notify
    from monitoring.models import AlertKind, Severity
    from monitoring.services import alert_raise

    with transaction.atomic():
        if not RetrainingRun.objects.filter(pk=run.pk, status__in=from_statuses).update(
            status=RunStatus.FAILED, status_reason=reason, finished_at=timezone.now()
        ):
            return False
        audit_record(actor=None, action="retraining.run_failed", target=run,
                     payload={"model": run.model.name, "reason": reason})
        notify(event="retraining.failed", title=f"Retraining of {run.model.name} failed (run #{run.pk})",
               body=reason, url=f"/retraining/runs/{run.pk}/", recipients=_recipients(run),
               payload={"run": run.pk, "model": run.model.name, "reason": reason})
        alert_raise(model=run.model, key=ALERT_KEY, kind=AlertKind.RETRAINING, severity=Severity.WARNING,
                    title=f"Retraining run #{run.pk} failed", detail=reason)
    _log(run.pk, f"Run failed: {reason}")
    return True

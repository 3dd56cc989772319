"""Registry writes: models, versions (registration and validation), trust settings.

Every state change goes through `audit_record`. Slow work (loading a model,
predicting, compiling ONNX) happens in the worker, inside the sandbox
subprocess; the web request only checks bytes, stores them and enqueues.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from accounts.models import Team
from accounts.services import audit_record
from opsportal.errors import DomainError
from registry import artifacts, selectors
from registry.models import (
    ArtifactFormat,
    Engine,
    ModelTag,
    ModelVersion,
    RegisteredModel,
    RegistryPolicy,
    TrustedType,
    VersionStatus,
)
from registry.sandbox import never_trustable

MSG_NAME_TAKEN = "A model with this name already exists."
MSG_NO_TEAM = "You are not in a team yet; ask an admin to add you to one, or name a team you belong to."
MSG_NOT_IN_TEAM = "You can only create models for a team you belong to."
MSG_DUPLICATE_ARTIFACT = "This exact artifact is already version {number} of this model."
MSG_NO_PARENT = "Parent version {number} does not exist for this model."
MSG_NEVER_TRUSTABLE = "Types from __main__ or without a module can never be trusted: they are code, not data."
MSG_TYPE_MODULE = "Only types from these packages can be trusted: {prefixes}."
MSG_TAMPERED = "The stored artifact no longer matches the hash recorded at registration; it was not loaded."
REASON_UNTRUSTED = "The file contains types OpsPortal does not trust: {types}. An admin can review and trust them."
REASON_MISMATCH = (
    "The model was saved with scikit-learn {trained}; the portal runs {running}. "
    "Retrain and save it with {running}, or ask an admin to accept the difference."
)
TRUSTABLE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "skops.", "lightgbm.", "xgboost.", "collections.")
EDITABLE_MODEL_FIELDS = ("title", "description", "business_objective")
EDITABLE_VERSION_FIELDS = ("description", "intended_use", "limitations", "training_data_description", "source_code_ref")


class RegistryError(DomainError):
    """A registry rule said no."""


# --- models ------------------------------------------------------------------------------


def _team_for(user: Any, team_slug: str | None) -> Team:
    teams = Team.objects.all() if user.is_staff else user.teams.all()
    if team_slug:
        team = teams.filter(slug=team_slug).first()
        if team is None:
            raise RegistryError("validation_error", MSG_NOT_IN_TEAM, details={"team": [MSG_NOT_IN_TEAM]})
        return team
    mine = list(user.teams.all()[:2])
    if len(mine) == 1:
        return mine[0]
    raise RegistryError("validation_error", MSG_NO_TEAM, details={"team": [MSG_NO_TEAM]})


def model_create(
    *,
    user: Any,
    name: str,
    task: str,
    title: str = "",
    description: str = "",
    business_objective: str = "",
    team: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    ip: str | None = None,
) -> RegisteredModel:
    owning_team = _team_for(user, team)
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name,
                task=task,
                title=title or name,
                description=description,
                business_objective=business_objective,
                team=owning_team,
                created_by=user,
            )
            model.owners.add(user)
            ModelTag.objects.bulk_create([ModelTag(model=model, tag=t) for t in sorted(set(tags))])
            audit_record(
                actor=user,
                action="model.created",
                target=model,
                ip=ip,
                payload={"task": task, "team": owning_team.slug, "tags": sorted(set(tags))},
            )
    except IntegrityError:
        raise RegistryError("conflict", MSG_NAME_TAKEN, status=409, details={"name": [MSG_NAME_TAKEN]}) from None
    return model


def model_update(
    *, model: RegisteredModel, user: Any, changes: dict[str, Any], ip: str | None = None
) -> RegisteredModel:
    """Metadata edits (title, description, objective, tags), audited with before and after."""
    before: dict[str, Any] = {}
    with transaction.atomic():
        for field in EDITABLE_MODEL_FIELDS:
            if field in changes and changes[field] != getattr(model, field):
                before[field] = getattr(model, field)
                setattr(model, field, changes[field])
        model.save()
        if "tags" in changes:
            old_tags = sorted(model.tags.values_list("tag", flat=True))
            if old_tags != sorted(set(changes["tags"])):
                before["tags"] = old_tags
                model.tags.all().delete()
                ModelTag.objects.bulk_create([ModelTag(model=model, tag=t) for t in sorted(set(changes["tags"]))])
        if before:
            after = {k: (sorted(set(changes[k])) if k == "tags" else changes[k]) for k in before}
            audit_record(
                actor=user, action="model.updated", target=model, ip=ip, payload={"before": before, "after": after}
            )
    return model


def model_set_evaluation_data(
    *, model: RegisteredModel, user: Any, upload: Any, target_column: str, ip: str | None = None
) -> RegisteredModel:
    """Attach a labelled holdout set that promotion gates score every candidate and the champion on."""
    with artifacts.uploaded_to_path(upload) as path:
        info = artifacts.check_dataset(path, target_column=target_column)
        blob = artifacts.blob_put(path, "datasets")
    with transaction.atomic():
        RegisteredModel.objects.filter(pk=model.pk).update(
            evaluation_key=blob.key, evaluation_sha256=blob.sha256, evaluation_format=info.format,
            evaluation_target=target_column,
        )
        audit_record(actor=user, action="model.evaluation_data_set", target=model, ip=ip,
                     payload={"sha256": blob.sha256, "target_column": target_column, "columns": len(info.columns)})
    model.refresh_from_db()
    return model


# --- registering a version ------------------------------------------------------------------


@dataclass
class VersionUpload:
    artifact: Any
    format: str
    reference: Any = None
    target_column: str = ""
    metrics: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    description: str = ""
    intended_use: str = ""
    limitations: str = ""
    source_code_ref: str = ""
    training_data_description: str = ""
    parent_number: int | None = None


def _checked_reference(upload: VersionUpload) -> tuple[artifacts.Blob | None, str]:
    if upload.reference is None:
        return None, ""
    with artifacts.uploaded_to_path(upload.reference) as path:
        info = artifacts.check_dataset(path, target_column=upload.target_column)
        return artifacts.blob_put(path, "datasets"), info.format


def _checked_artifact(upload: VersionUpload) -> artifacts.Blob:
    allow_pickle = selectors.registry_policy().allow_pickle
    with artifacts.uploaded_to_path(upload.artifact) as path:
        artifacts.check_artifact(path, upload.format, allow_pickle=allow_pickle)
        return artifacts.blob_put(path, "artifacts")


def version_register(
    *, model: RegisteredModel, user: Any, upload: VersionUpload, ip: str | None = None
) -> ModelVersion:
    """Check the bytes, store them content-addressed, create the version and queue validation.

    Refusals (wrong format, bombs, bad dataset, duplicate) raise before any row exists.
    """
    artifact = _checked_artifact(upload)
    reference, reference_format = _checked_reference(upload)
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        _refuse_duplicate(locked, artifact.sha256)
        version = ModelVersion.objects.create(
            model=locked,
            number=_next_number(locked),
            status=VersionStatus.VALIDATING,
            format=upload.format,
            artifact_key=artifact.key,
            artifact_sha256=artifact.sha256,
            artifact_size=artifact.size,
            original_filename=getattr(upload.artifact, "name", "")[:255],
            reference_key=reference.key if reference else "",
            reference_sha256=reference.sha256 if reference else "",
            reference_format=reference_format,
            training_data_fingerprint=reference.sha256 if reference else "",
            target_column=upload.target_column,
            metrics=upload.metrics or {},
            params=upload.params or {},
            description=upload.description,
            intended_use=upload.intended_use,
            limitations=upload.limitations,
            source_code_ref=upload.source_code_ref,
            training_data_description=upload.training_data_description,
            parent=_parent(locked, upload.parent_number),
            created_by=user,
        )
        audit_record(
            actor=user,
            action="version.registered",
            target=version,
            ip=ip,
            payload={
                "format": version.format,
                "artifact_sha256": artifact.sha256,
                "size": artifact.size,
                "reference_sha256": version.reference_sha256,
            },
        )
        _enqueue_validation(version)
    return version


def _refuse_duplicate(model: RegisteredModel, sha256: str) -> None:
    existing = model.versions.filter(artifact_sha256=sha256).values_list("number", flat=True).first()
    if existing is not None:
        message = MSG_DUPLICATE_ARTIFACT.format(number=existing)
        raise RegistryError("duplicate_artifact", message, status=409, details={"version": existing})


def _next_number(model: RegisteredModel) -> int:
    return (model.versions.aggregate(top=Max("number"))["top"] or 0) + 1


def _parent(model: RegisteredModel, number: int | None) -> ModelVersion | None:
    if number is None:
        return None
    parent = model.versions.filter(number=number).first()
    if parent is None:
        message = MSG_NO_PARENT.format(number=number)
        raise RegistryError("validation_error", message, details={"parent_version": [message]})
    return parent


def _enqueue_validation(version: ModelVersion) -> None:
    from registry.tasks import version_validate_task

    transaction.on_commit(lambda: version_validate_task.delay(version.pk))


def version_update_metadata(
    *, version: ModelVersion, user: Any, changes: dict[str, Any], ip: str | None = None
) -> ModelVersion:
    """Model-card text only; the artifact and signature have no update path."""
    before = {
        f: getattr(version, f) for f in EDITABLE_VERSION_FIELDS if f in changes and changes[f] != getattr(version, f)
    }
    if not before:
        return version
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(**{f: changes[f] for f in before})
        audit_record(
            actor=user,
            action="version.metadata_updated",
            target=version,
            ip=ip,
            payload={"before": before, "after": {f: changes[f] for f in before}},
        )
    version.refresh_from_db()
    return version


# --- validation (worker) --------------------------------------------------------------------------


def _limit_resources() -> None:  # runs in the child between fork and exec
    memory = settings.SANDBOX_MEMORY_MB * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = settings.SANDBOX_TIMEOUT_SECONDS
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_sandbox(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run registry.sandbox in a child with a memory cap, time limits and no secrets in its environment."""
    job = {**job, "result_path": str(workdir / "result.json")}
    (workdir / "job.json").write_text(json.dumps(job))
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(settings.BASE_DIR),
        "HOME": str(workdir),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "registry.sandbox", str(workdir / "job.json")],
            cwd=workdir,
            env=environment,
            preexec_fn=_limit_resources,
            timeout=settings.SANDBOX_TIMEOUT_SECONDS,
            capture_output=True,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": "failed", "reason": f"Validation took longer than {settings.SANDBOX_TIMEOUT_SECONDS} s."}
    result_path = workdir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return {"outcome": "failed", "reason": f"The model crashed the validator ({how}). {tail[0][:300]}".strip()}


def _claim_validation(version_id: int) -> ModelVersion | None:
    claimed = ModelVersion.objects.filter(
        pk=version_id, status=VersionStatus.VALIDATING, validation_attempts__lt=settings.VALIDATION_MAX_ATTEMPTS
    ).update(validation_attempts=F("validation_attempts") + 1)
    if claimed:
        return ModelVersion.objects.select_related("model").get(pk=version_id)
    _give_up(version_id)
    return None


def _give_up(version_id: int) -> None:
    reason = f"Validation did not finish after {settings.VALIDATION_MAX_ATTEMPTS} attempts (the worker kept dying)."
    with transaction.atomic():
        if ModelVersion.objects.filter(
            pk=version_id, status=VersionStatus.VALIDATING, validation_attempts__gte=settings.VALIDATION_MAX_ATTEMPTS
        ).update(status=VersionStatus.FAILED, status_reason=reason):
            audit_record(
                actor=None,
                action="version.validation_failed",
                target=ModelVersion.objects.get(pk=version_id),
                payload={"reason": reason},
            )


def version_validate(*, version_id: int) -> None:
    """Worker side of registration.

    1. claim the version (validating, attempts left) and count the attempt;
    2. copy artifact and reference out of storage, checking their hashes;
    3. run the sandbox subprocess;
    4. store the ONNX twin when it matched, and apply the outcome once.
    """
    version = _claim_validation(version_id)
    if version is None:
        return
    with tempfile.TemporaryDirectory(prefix="opsportal-validate-") as tmp:
        workdir = Path(tmp)
        try:
            result = _validate_in(version, workdir)
        except artifacts.ArtifactTampered as exc:
            _apply_outcome(version, {"outcome": "failed", "reason": MSG_TAMPERED}, None)
            audit_record(actor=None, action="artifact.tampered", target=version, payload={"detail": str(exc)})
            return
        twin = workdir / "twin.onnx"
        onnx_blob = (
            artifacts.blob_put(twin, "onnx")
            if result.get("onnx", {}).get("engine") == "onnx" and twin.exists()
            else None
        )
    _apply_outcome(version, result, onnx_blob)


def _validate_in(version: ModelVersion, workdir: Path) -> dict[str, Any]:
    (workdir / "in").mkdir()
    with artifacts.blob_local_copy(version.artifact_key, version.artifact_sha256, workdir / "in") as artifact_path:
        job = {
            "artifact_path": str(artifact_path),
            "format": version.format,
            "task": version.model.task,
            "trusted": selectors.trusted_type_names(),
            "target_column": version.target_column,
            "accept_version_mismatch": version.version_mismatch_accepted_by_id is not None,
            "onnx_out_path": str(workdir / "twin.onnx"),
            "reference_path": "",
            "reference_format": "",
        }
        if not version.reference_key:
            return run_sandbox(job, workdir)
        with artifacts.blob_local_copy(version.reference_key, version.reference_sha256, workdir / "in") as ref_path:
            return run_sandbox(
                {**job, "reference_path": str(ref_path), "reference_format": version.reference_format}, workdir
            )


def _outcome_fields(version: ModelVersion, result: dict[str, Any], onnx_blob: artifacts.Blob | None) -> dict[str, Any]:
    outcome = result.get("outcome")
    fields: dict[str, Any] = {
        "validated_at": timezone.now(),
        "untrusted_types": result.get("untrusted_types", []),
        "trained_sklearn_version": result.get("trained_sklearn_version", ""),
    }
    if outcome == "untrusted":
        reason = REASON_UNTRUSTED.format(types=", ".join(result["untrusted_types"]))
    elif outcome == "version_mismatch":
        import sklearn

        reason = REASON_MISMATCH.format(trained=result["trained_sklearn_version"], running=sklearn.__version__)
    elif outcome == "ready":
        return {**fields, **_ready_fields(version, result, onnx_blob)}
    else:
        reason = result.get("reason") or "Validation failed for an unknown reason."
    return {**fields, "status": VersionStatus.FAILED, "status_reason": reason}


def _ready_fields(version: ModelVersion, result: dict[str, Any], onnx_blob: artifacts.Blob | None) -> dict[str, Any]:
    onnx = result.get("onnx", {})
    engine = Engine.ONNX if (onnx_blob is not None or version.format == ArtifactFormat.ONNX) else Engine.SKLEARN
    return {
        "status": VersionStatus.READY,
        "status_reason": "",
        "signature": result["signature"],
        "framework": result.get("framework", ""),
        "library_versions": result.get("library_versions", {}),
        "reference_rows": result.get("reference_rows"),
        "feature_importance": result.get("feature_importance", []),
        "engine": engine,
        "engine_reason": onnx.get("reason", ""),
        "onnx_key": onnx_blob.key if onnx_blob else "",
        "onnx_sha256": onnx_blob.sha256 if onnx_blob else "",
        "validation": {
            "load_seconds": result.get("load_seconds"),
            "memory_mb": result.get("memory_mb"),
            "timings": result.get("timings"),
            "smoke": result.get("smoke"),
            "onnx_max_abs_diff": onnx.get("onnx_max_abs_diff"),
            "onnx_timings": onnx.get("timings"),
        },
    }


def _apply_outcome(version: ModelVersion, result: dict[str, Any], onnx_blob: artifacts.Blob | None) -> None:
    fields = _outcome_fields(version, result, onnx_blob)
    with transaction.atomic():
        # Conditional: a version is validated once, and never changes after it is ready.
        if not ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.VALIDATING).update(**fields):
            return
        action = "version.validated" if fields["status"] == VersionStatus.READY else "version.validation_failed"
        payload = {
            "status": fields["status"],
            "reason": fields.get("status_reason", ""),
            "engine": fields.get("engine", ""),
        }
        audit_record(actor=None, action=action, target=version, payload=payload)
        if fields["status"] == VersionStatus.READY:
            _enqueue_reference_profile(version)


def _enqueue_reference_profile(version: ModelVersion) -> None:
    """Monitoring profiles the reference data of every ready version (robust: a broker hiccup must not
    undo the validation; the first monitoring run computes a missing profile itself)."""
    from monitoring.tasks import reference_profile_compute

    transaction.on_commit(lambda: reference_profile_compute.delay(version.pk), robust=True)


# --- trust settings (admins) -----------------------------------------------------------------------


def _requeue_failed(versions: Any) -> int:
    count = 0
    for version in versions:
        if ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.FAILED).update(
            status=VersionStatus.VALIDATING, status_reason="", validation_attempts=0
        ):
            audit_record(actor=None, action="version.revalidation_queued", target=version)
            _enqueue_validation(version)
            count += 1
    return count


def trusted_type_add(*, admin: Any, name: str, reason: str, ip: str | None = None) -> TrustedType:
    """Trust one type, then re-validate versions that failed only for types now all trusted."""
    name = name.strip()
    if never_trustable(name):
        raise RegistryError("validation_error", MSG_NEVER_TRUSTABLE, details={"name": [MSG_NEVER_TRUSTABLE]})
    if not name.startswith(TRUSTABLE_PREFIXES):
        message = MSG_TYPE_MODULE.format(prefixes=", ".join(p.rstrip(".") for p in TRUSTABLE_PREFIXES))
        raise RegistryError("validation_error", message, details={"name": [message]})
    with transaction.atomic():
        trusted, created = TrustedType.objects.get_or_create(name=name, defaults={"reason": reason, "added_by": admin})
        if created:
            audit_record(actor=admin, action="trust.type_added", target=trusted, ip=ip, payload={"reason": reason})
            names = set(selectors.trusted_type_names())
            waiting = [
                v
                for v in ModelVersion.objects.filter(status=VersionStatus.FAILED).exclude(untrusted_types=[])
                if set(v.untrusted_types) <= names
            ]
            _requeue_failed(waiting)
    return trusted


def trusted_type_remove(*, admin: Any, trusted: TrustedType, ip: str | None = None) -> None:
    with transaction.atomic():
        audit_record(actor=admin, action="trust.type_removed", target=trusted, ip=ip, payload={"name": trusted.name})
        trusted.delete()


def version_accept_sklearn_mismatch(*, admin: Any, version: ModelVersion, ip: str | None = None) -> bool:
    """An admin accepts a model saved with another scikit-learn version; validation re-runs."""
    with transaction.atomic():
        updated = (
            ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.FAILED, version_mismatch_accepted_by=None)
            .exclude(trained_sklearn_version="")
            .update(version_mismatch_accepted_by=admin)
        )
        if updated:
            audit_record(
                actor=admin,
                action="version.sklearn_mismatch_accepted",
                target=version,
                ip=ip,
                payload={"trained_sklearn_version": version.trained_sklearn_version},
            )
            _requeue_failed([version])
    return bool(updated)


def policy_set_allow_pickle(*, admin: Any, allow: bool, ip: str | None = None) -> RegistryPolicy:
    with transaction.atomic():
        policy = RegistryPolicy.objects.select_for_update().get(pk=selectors.registry_policy().pk)
        if policy.allow_pickle != allow:
            policy.allow_pickle, policy.updated_by = allow, admin
            policy.save()
            audit_record(
                actor=admin, action="policy.allow_pickle_changed", target=policy, ip=ip, payload={"allow_pickle": allow}
            )
    return policy

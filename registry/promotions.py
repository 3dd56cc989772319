"""Governance writes: promotion requests, gate evaluation, decisions, overrides, promotion and rollback.

Decisions are race-free: the request row is locked (`select_for_update`) and every
status change is a conditional UPDATE on `status = 'open'` whose row count decides
who won, so two approvers clicking at once give one decision.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import audit_record
from opsportal.errors import DomainError
from opsportal.roles import Role, user_roles
from registry import artifacts, gates, selectors
from registry.models import (
    AliasName,
    Approval,
    ApprovalPolicy,
    Decision,
    GateOverride,
    GatesStatus,
    ModelAlias,
    ModelVersion,
    PromotionComment,
    PromotionRequest,
    PromotionTarget,
    RegisteredModel,
    RequestStatus,
    Stage,
    StageTransition,
    TransitionKind,
    VersionStatus,
)
from registry.selectors import approvals_by_role, approvals_missing, required_roles
from registry.services import run_sandbox

MSG_NOT_READY = "Version {number} is {status}: only a validated version can be submitted for approval."
MSG_ALREADY_THERE = "Version {number} is already in {target}."
MSG_OPEN_EXISTS = "This version already has an open request for {target}."
MSG_DECIDED = "This request was already decided ({status})."
MSG_ALREADY_VOTED = "You have already decided on this request."
MSG_NOT_ELIGIBLE = "Your role does not count for this request's policy (needs: {roles})."
MSG_OWN_REQUEST = "You requested this promotion: someone else must decide it (four eyes)."
MSG_OWN_VERSION = "You registered this version: someone else must decide it (four eyes)."
MSG_REASON_REQUIRED = "Give a reason."
MSG_GATE_PASSING = "The gate {gate} passes: there is nothing to override."
MSG_UNKNOWN_GATE = "No gate named {gate} was evaluated on this request."
MSG_NO_PRODUCTION = "Nothing is in production for this model."
MSG_NO_PREVIOUS = "There is no earlier production version to roll back to."
MSG_NOT_REQUESTER = "Only the requester or an admin can withdraw this request."
MSG_EVAL_NO_TARGET = "neither a holdout set for the model nor reference data with a target column exists"
MSG_NO_AUTO_PROMOTE = "{model}'s own approval policy does not allow automatic promotion."


class GovernanceError(DomainError):
    """A governance rule said no."""


# --- opening a request ---------------------------------------------------------------------------


def promotion_open(
    *, version: ModelVersion, user: Any, target: str, justification: str, ip: str | None = None
) -> PromotionRequest:
    if version.status != VersionStatus.READY:
        raise GovernanceError("not_ready", MSG_NOT_READY.format(number=version.number, status=version.status),
                              status=409)
    if version.stage == target:
        raise GovernanceError("conflict", MSG_ALREADY_THERE.format(number=version.number, target=target), status=409)
    try:
        with transaction.atomic():
            _supersede_older(version, target, user)
            request = PromotionRequest.objects.create(version=version, target=target, requester=user,
                                                      justification=justification)
            audit_record(actor=user, action="promotion.opened", target=request, ip=ip,
                         payload={"version": version.number, "target": target, "justification": justification})
            _enqueue_gates(request)
    except IntegrityError:
        raise GovernanceError("conflict", MSG_OPEN_EXISTS.format(target=target), status=409) from None
    return request


def _supersede_older(version: ModelVersion, target: str, user: Any) -> None:
    older = PromotionRequest.objects.filter(
        version__model=version.model, target=target, status=RequestStatus.OPEN
    ).exclude(version=version)
    for request in older:
        if PromotionRequest.objects.filter(pk=request.pk, status=RequestStatus.OPEN).update(
            status=RequestStatus.SUPERSEDED, decided_at=timezone.now()
        ):
            audit_record(actor=user, action="promotion.superseded", target=request,
                         payload={"by_version": version.number})


def _enqueue_gates(request: PromotionRequest) -> None:
    from registry.tasks import promotion_gates_task

    transaction.on_commit(lambda: promotion_gates_task.delay(request.pk))


# --- evaluating the gates (worker) ---------------------------------------------------------------


def _evaluation_data(version: ModelVersion) -> tuple[str, str, str, str, str] | None:
    """(key, sha256, format, target, label) of the rows both models are scored on."""
    model = version.model
    if model.evaluation_key and model.evaluation_target:
        return (model.evaluation_key, model.evaluation_sha256, model.evaluation_format, model.evaluation_target,
                "the model's holdout set")
    if version.reference_key and version.target_column:
        return (version.reference_key, version.reference_sha256, version.reference_format, version.target_column,
                f"v{version.number}'s reference data (no holdout set for this model)")
    return None


def _model_spec(key: str, version: ModelVersion, directory: Path, stack: Any) -> dict[str, Any]:
    path = stack.enter_context(artifacts.blob_local_copy(version.artifact_key, version.artifact_sha256, directory))
    return {"key": key, "artifact_path": str(path), "format": version.format,
            "accept_version_mismatch": version.version_mismatch_accepted_by_id is not None}


def measure(version: ModelVersion, champion: ModelVersion | None, policy: ApprovalPolicy) -> dict[str, Any]:
    """Score candidate and champion on the same rows in the sandbox; `error` says why not."""
    from contextlib import ExitStack

    data = _evaluation_data(version)
    if data is None:
        return {"error": MSG_EVAL_NO_TARGET}
    key, sha, fmt, target, label = data
    with tempfile.TemporaryDirectory(prefix="opsportal-gates-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        (workdir / "in").mkdir()
        try:
            models = [_model_spec("candidate", version, workdir / "in", stack)]
            if champion is not None and champion.pk != version.pk:
                models.append(_model_spec("champion", champion, workdir / "in", stack))
            data_path = stack.enter_context(artifacts.blob_local_copy(key, sha, workdir / "in"))
        except artifacts.ArtifactTampered:
            return {"error": "a stored artifact no longer matches its registered hash"}
        job = {"mode": "evaluate", "task": version.model.task, "models": models, "data_path": str(data_path),
               "data_format": fmt, "target_column": target, "trusted": selectors.trusted_type_names(),
               "fairness": policy.gates.get("fairness")}
        outcome = run_sandbox(job, workdir)
    if outcome.get("outcome") != "evaluated":
        return {"error": outcome.get("reason", "evaluation failed"), "data": label}
    return {**outcome, "data": label}


def promotion_gates_evaluate(*, request_id: int) -> None:
    """Worker: measure, evaluate every gate, store the results on the (still open) request."""
    request = PromotionRequest.objects.select_related("version__model").filter(pk=request_id).first()
    if request is None or request.status != RequestStatus.OPEN:
        return
    version, policy = request.version, selectors.policy_for(request.version.model)
    champion = selectors.production_version(version.model)
    evaluation = measure(version, champion, policy)
    results = gates.evaluate(version, policy, evaluation, champion)
    first = request.gates_evaluated_at is None
    fields = {"gate_results": results, "gates_status": _status_of(results, request), "evaluation": evaluation,
              "gates_evaluated_at": timezone.now(), "champion_at_evaluation": champion}
    if first:
        fields["gates_at_open"] = results
    with transaction.atomic():
        if not PromotionRequest.objects.filter(pk=request.pk, status=RequestStatus.OPEN).update(**fields):
            return
        audit_record(actor=None, action="promotion.gates_evaluated", target=request,
                     payload={r["gate"]: r["passed"] for r in results})
        if first:
            _notify_opened(request, results)
    request.refresh_from_db()
    _promote_if_ready(request, actor=None)


def _status_of(results: list[dict[str, Any]], request: PromotionRequest) -> str:
    overridden = set(request.overrides.values_list("gate", flat=True)) if request.pk else set()
    ok = all(r["passed"] or r["gate"] in overridden for r in results)
    return GatesStatus.PASSED if ok else GatesStatus.FAILED


def gates_at_decision(request: PromotionRequest) -> list[dict[str, Any]] | None:
    """The gates again, now; None while a measurement is pending.

    Data gates reuse the stored measurement only while the champion is unchanged (same models,
    same rows: the same numbers); otherwise a new measurement is queued, and the request is
    decided when it lands (`promotion_gates_evaluate` ends by trying to promote).
    """
    if request.gates_evaluated_at is None:
        return None
    version = ModelVersion.objects.select_related("model").get(pk=request.version_id)
    champion = selectors.production_version(version.model)
    if (champion.pk if champion else None) != request.champion_at_evaluation_id:
        PromotionRequest.objects.filter(pk=request.pk).update(gates_evaluated_at=None,
                                                              gates_status=GatesStatus.EVALUATING)
        _enqueue_gates(request)
        return None
    return gates.evaluate(version, selectors.policy_for(version.model), request.evaluation, champion)


# --- decisions -------------------------------------------------------------------------------------


def eligible_role(user: Any, request: PromotionRequest, policy: ApprovalPolicy) -> str:
    """The policy role this person's decision counts for; admins count as approvers."""
    needed = required_roles(policy, request.target)
    mine = set(user_roles(user)) | ({str(Role.APPROVER)} if user.is_staff else set())
    have = approvals_by_role(request)
    for role in sorted(needed, key=lambda r: have.get(r, 0) >= needed[r]):  # still-missing roles first
        if role in mine:
            return role
    raise GovernanceError("permission_denied", MSG_NOT_ELIGIBLE.format(roles=", ".join(needed) or "none"),
                          status=403)


def check_four_eyes(user: Any, request: PromotionRequest, policy: ApprovalPolicy) -> None:
    if request.requester_id == user.pk and not policy.allow_requester_approval:
        raise GovernanceError("four_eyes", MSG_OWN_REQUEST, status=403)
    if request.version.created_by_id == user.pk and not policy.allow_author_approval:
        raise GovernanceError("four_eyes", MSG_OWN_VERSION, status=403)


def promotion_decide(
    *, request: PromotionRequest, user: Any, decision: str, comment: str = "", ip: str | None = None
) -> PromotionRequest:
    """Record one person's decision. A rejection decides the request; enough approvals with every gate
    passing (or overridden) promote the version at once."""
    if decision == Decision.REJECT and not comment.strip():
        raise GovernanceError("validation_error", MSG_REASON_REQUIRED, details={"comment": [MSG_REASON_REQUIRED]})
    with transaction.atomic():
        locked = PromotionRequest.objects.select_for_update().select_related("version__model").get(pk=request.pk)
        if locked.status != RequestStatus.OPEN:
            raise GovernanceError("already_decided", MSG_DECIDED.format(status=locked.status), status=409)
        policy = selectors.policy_for(locked.version.model)
        check_four_eyes(user, locked, policy)
        role = eligible_role(user, locked, policy)
        try:
            with transaction.atomic():
                Approval.objects.create(request=locked, user=user, role=role, decision=decision, comment=comment)
        except IntegrityError:
            raise GovernanceError("already_decided", MSG_ALREADY_VOTED, status=409) from None
        action = "promotion.approval_given" if decision == Decision.APPROVE else "promotion.rejected"
        audit_record(actor=user, action=action, target=locked, ip=ip, payload={"role": role, "comment": comment})
        if decision == Decision.REJECT:
            _close(locked, RequestStatus.REJECTED, user, comment)
            _notify_decided(locked, "rejected", user, comment)
        else:
            _promote_if_ready(locked, actor=user)
    locked.refresh_from_db()
    return locked


def _close(request: PromotionRequest, status: str, user: Any, reason: str) -> bool:
    return bool(PromotionRequest.objects.filter(pk=request.pk, status=RequestStatus.OPEN).update(
        status=status, decided_at=timezone.now(), decided_by=user, decision_reason=reason
    ))


def _promote_if_ready(request: PromotionRequest, *, actor: Any) -> bool:
    policy = selectors.policy_for(request.version.model)
    if approvals_missing(request, policy):
        return False
    results = gates_at_decision(request)
    if results is None:
        return False
    overridden = set(request.overrides.values_list("gate", flat=True))
    failing = [r["gate"] for r in results if not r["passed"] and r["gate"] not in overridden]
    PromotionRequest.objects.filter(pk=request.pk).update(
        gate_results=results, gates_status=GatesStatus.FAILED if failing else GatesStatus.PASSED
    )
    if failing:
        return False
    with transaction.atomic():
        decider = actor or request.approvals.filter(decision=Decision.APPROVE).last().user
        if not _close(request, RequestStatus.APPROVED, decider, "Approvals complete and every gate passes."):
            return False
        _move_to(request.version, request.target, actor=decider, request=request, kind=TransitionKind.PROMOTION)
        audit_record(actor=decider, action="model.promoted", target=request.version,
                     payload={"target": request.target, "request": request.pk})
        _notify_decided(request, "approved", decider, "")
    return True


def promotion_auto_approve(*, request: PromotionRequest, reason: str, payload: dict[str, Any]) -> bool:
    """Approve `request` with no person deciding: only where the model's own policy switched automatic
    promotion on (never the default policy). The caller has checked the gates and the comparison.
    Returns False when the request was no longer open."""
    model = request.version.model
    if not ApprovalPolicy.objects.filter(model=model, auto_promote=True).exists():
        raise GovernanceError("forbidden", MSG_NO_AUTO_PROMOTE.format(model=model.name), status=403)
    with transaction.atomic():
        if not _close(request, RequestStatus.APPROVED, None, reason):
            return False
        _move_to(request.version, request.target, actor=None, kind=TransitionKind.PROMOTION, request=request,
                 reason=reason)
        audit_record(actor=None, action="model.promoted", target=request.version,
                     payload={"target": request.target, "request": request.pk, "automatic": True, **payload})
        _notify_decided(request, "approved", None, reason)
    return True


# --- stage moves -------------------------------------------------------------------------------------


def _transition(version: ModelVersion, to_stage: str, *, actor: Any, kind: str, request: Any = None,
                reason: str = "") -> None:
    StageTransition.objects.create(model=version.model, version=version, from_stage=version.stage, to_stage=to_stage,
                                   kind=kind, request=request, actor=actor, reason=reason, at=timezone.now())
    ModelVersion.objects.filter(pk=version.pk).update(stage=to_stage)
    version.stage = to_stage


def _move_to(version: ModelVersion, target: str, *, actor: Any, kind: str, request: Any = None,
             reason: str = "") -> None:
    """Atomically: the old production version is archived first (one production version at most),
    then this one moves, and the alias follows."""
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    if target == PromotionTarget.PRODUCTION:
        current = selectors.production_version(model)
        if current is not None and current.pk != version.pk:
            _transition(current, Stage.ARCHIVED, actor=actor, kind=TransitionKind.ARCHIVED, request=request,
                        reason=f"replaced by v{version.number}")
    _transition(version, target, actor=actor, kind=kind, request=request, reason=reason)
    alias = AliasName.CHAMPION if target == PromotionTarget.PRODUCTION else AliasName.CHALLENGER
    ModelAlias.objects.update_or_create(model=model, name=alias, defaults={"version": version})
    if alias == AliasName.CHAMPION:
        ModelAlias.objects.filter(model=model, name=AliasName.CHALLENGER, version=version).delete()


def model_rollback(*, model: RegisteredModel, user: Any, reason: str, ip: str | None = None) -> ModelVersion:
    """Restore the version that was in production before the current one."""
    if not reason.strip():
        raise GovernanceError("validation_error", MSG_REASON_REQUIRED, details={"reason": [MSG_REASON_REQUIRED]})
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        current = selectors.production_version(locked)
        if current is None:
            raise GovernanceError("conflict", MSG_NO_PRODUCTION, status=409)
        previous = selectors.previous_production(locked, current)
        if previous is None:
            raise GovernanceError("conflict", MSG_NO_PREVIOUS, status=409)
        _move_to(previous, PromotionTarget.PRODUCTION, actor=user, kind=TransitionKind.ROLLBACK, reason=reason)
        audit_record(actor=user, action="model.rolled_back", target=previous, ip=ip,
                     payload={"from_version": current.number, "to_version": previous.number, "reason": reason})
        _notify(event="model.rolled_back", model=locked,
                title=f"{locked.name} rolled back to v{previous.number}",
                body=f"{user.get_username()} rolled back from v{current.number}: {reason}",
                url=f"/models/{locked.name}/", recipients=_people_of(locked))
    previous.refresh_from_db()
    return previous


# --- overrides, withdrawal, comments -------------------------------------------------------------------


def gate_override(*, request: PromotionRequest, admin: Any, gate: str, reason: str, ip: str | None = None) -> Any:
    """An admin lets one failing gate pass, with a written reason kept forever on the version."""
    if not reason.strip():
        raise GovernanceError("validation_error", MSG_REASON_REQUIRED, details={"reason": [MSG_REASON_REQUIRED]})
    with transaction.atomic():
        locked = PromotionRequest.objects.select_for_update().select_related("version__model").get(pk=request.pk)
        if locked.status != RequestStatus.OPEN:
            raise GovernanceError("already_decided", MSG_DECIDED.format(status=locked.status), status=409)
        evaluated = {r["gate"]: r for r in locked.gate_results}
        if gate not in evaluated:
            raise GovernanceError("validation_error", MSG_UNKNOWN_GATE.format(gate=gate), details={"gate": [gate]})
        if evaluated[gate]["passed"]:
            raise GovernanceError("conflict", MSG_GATE_PASSING.format(gate=gate), status=409)
        override = GateOverride.objects.create(request=locked, version=locked.version, gate=gate, admin=admin,
                                               reason=reason, measured=evaluated[gate])
        audit_record(actor=admin, action="promotion.gate_overridden", target=locked.version, ip=ip, payload={
            "request": locked.pk, "gate": gate, "reason": reason, "detail": evaluated[gate]["detail"],
        })
        PromotionRequest.objects.filter(pk=locked.pk).update(gates_status=_status_of(locked.gate_results, locked))
        _promote_if_ready(locked, actor=None)
    return override


def promotion_withdraw(*, request: PromotionRequest, user: Any, ip: str | None = None) -> None:
    if request.requester_id != user.pk and not user.is_staff:
        raise GovernanceError("permission_denied", MSG_NOT_REQUESTER, status=403)
    with transaction.atomic():
        if not _close(request, RequestStatus.WITHDRAWN, user, "withdrawn"):
            raise GovernanceError("already_decided", MSG_DECIDED.format(status=request.status), status=409)
        audit_record(actor=user, action="promotion.withdrawn", target=request, ip=ip)


def promotion_comment(*, request: PromotionRequest, user: Any, body: str, ip: str | None = None) -> PromotionComment:
    with transaction.atomic():
        comment = PromotionComment.objects.create(request=request, author=user, body=body)
        audit_record(actor=user, action="promotion.commented", target=request, ip=ip, payload={"body": body[:500]})
        recipients = {request.requester, *[a.user for a in request.approvals.select_related("user")]} - {user}
        _notify(event="promotion.commented", model=request.version.model,
                title=f"New comment on {request.version} → {request.target}", body=body[:500],
                url=f"/approvals/{request.pk}/", recipients=recipients)
    return comment


def policy_update(*, model: RegisteredModel | None, admin: Any, changes: dict[str, Any], ip: str | None = None) -> Any:
    """Create or change a model's policy (or the default, `model=None`), audited with before and after."""
    with transaction.atomic():
        policy = ApprovalPolicy.objects.filter(model=model).first()
        if policy is None:
            base = selectors.policy_for(model) if model is not None else None
            policy = ApprovalPolicy(model=model)
            if base is not None:
                for field in ("required_approvals", "allow_requester_approval", "allow_author_approval", "gates",
                              "auto_promote"):
                    setattr(policy, field, getattr(base, field))
        before = {k: getattr(policy, k) for k in changes}
        for key, value in changes.items():
            setattr(policy, key, value)
        policy.updated_by = admin
        policy.save()
        audit_record(actor=admin, action="policy.updated", target=policy, ip=ip,
                     payload={"model": model.name if model else None, "before": before, "after": changes})
    return policy


# --- notifications ----------------------------------------------------------------------------------------


def _people_of(model: RegisteredModel) -> list[Any]:
    from accounts.notifications import users_with_role

    return [*model.owners.all(), *users_with_role(Role.APPROVER)]


def _notify(*, event: str, model: RegisteredModel, title: str, body: str, url: str, recipients: Any) -> None:
    from accounts.notifications import notify

    notify(event=event, title=title, body=body, url=url, recipients=recipients,
           payload={"model": model.name, "title": title, "body": body, "url": url})


def _notify_opened(request: PromotionRequest, results: list[dict[str, Any]]) -> None:
    from accounts.notifications import users_with_role

    policy = selectors.policy_for(request.version.model)
    roles = [Role(r) for r in required_roles(policy, request.target) if r in {str(x) for x in Role}]
    failing = [r["label"] for r in results if not r["passed"]]
    body = (f"{request.requester.get_username()} asks to promote {request.version} to {request.target}: "
            f"{request.justification[:300]}\nGates: " + (f"failing: {', '.join(failing)}" if failing else "all pass"))
    _notify(event="promotion.opened", model=request.version.model,
            title=f"Approval requested: {request.version} → {request.target}", body=body,
            url=f"/approvals/{request.pk}/", recipients=[u for u in users_with_role(*roles) if u != request.requester])


def _notify_decided(request: PromotionRequest, outcome: str, user: Any, comment: str) -> None:
    event = "model.promoted" if outcome == "approved" else "promotion.rejected"
    title = (f"{request.version} promoted to {request.target}" if outcome == "approved"
             else f"{request.version} → {request.target} rejected")
    decider = user.get_username() if user is not None else "OpsPortal (automatic, by the model's policy)"
    body = f"Decided by {decider}." + (f" Reason: {comment}" if comment else "")
    _notify(event=event, model=request.version.model, title=title, body=body, url=f"/approvals/{request.pk}/",
            recipients={request.requester, *request.version.model.owners.all()})

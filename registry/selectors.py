"""Registry reads. Visibility: admins, approvers and business owners see every model;
data scientists see their teams' models; anyone else sees none."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404

from accounts.models import AuditEvent, Team
from opsportal.hotsql import fetch_all
from opsportal.roles import Role, has_role, user_roles
from registry.models import ModelAlias, ModelVersion, RegisteredModel, RegistryPolicy, TrustedType


def models_visible_to(user: Any) -> QuerySet[RegisteredModel]:
    models = RegisteredModel.objects.select_related("team").prefetch_related("tags")
    if has_role(user, Role.APPROVER, Role.BUSINESS_OWNER):
        return models
    if has_role(user, Role.DATA_SCIENTIST):
        return models.filter(team__members=user).distinct()
    return models.none()


def model_for_scoring(user: Any, name: str, *, alias: str = "champion",
                      number: int | None = None) -> tuple[RegisteredModel, int | None]:
    """The model (id, name, team) and the id of the version to score, in one SQL round trip.

    The version is the one holding `alias`, or version `number` when given (None: there is
    none). Raises 404 when `user` may not see the model. Hand-written SQL because this runs
    on every prediction, where building an ORM query costs more than answering it.
    """
    seen_all = has_role(user, Role.APPROVER, Role.BUSINESS_OWNER)
    if not seen_all and not has_role(user, Role.DATA_SCIENTIST):
        raise Http404("No such model.")
    rows = fetch_all(_scoring_sql(number is not None), [number if number is not None else alias, user.pk, name])
    row = rows[0] if rows else None
    if row is None or not (seen_all or row[4]):
        raise Http404("No such model.")
    model = RegisteredModel.from_db(connection.alias, ["id", "name", "team_id"], list(row[:3]))
    return model, row[3]


@functools.cache  # the process's one database: built once per shape
def _scoring_sql(by_number: bool) -> str:
    qn = connection.ops.quote_name
    members = Team.members.through._meta.db_table
    target = (f"SELECT v.{qn('id')} FROM {qn(ModelVersion._meta.db_table)} v "  # noqa: S608  (quoted names from model metadata; values are parameters)
              f"WHERE v.{qn('model_id')} = m.{qn('id')} AND v.{qn('number')} = %s") if by_number else (
        f"SELECT a.{qn('version_id')} FROM {qn(ModelAlias._meta.db_table)} a "  # noqa: S608  (quoted names from model metadata; values are parameters)
        f"WHERE a.{qn('model_id')} = m.{qn('id')} AND a.{qn('name')} = %s")
    return (
        f"SELECT m.{qn('id')}, m.{qn('name')}, m.{qn('team_id')}, ({target}), "  # noqa: S608  (quoted names from model metadata; values are parameters)
        f"EXISTS (SELECT 1 FROM {qn(members)} tm WHERE tm.{qn('team_id')} = m.{qn('team_id')} "
        f"AND tm.{qn('user_id')} = %s) "
        f"FROM {qn(RegisteredModel._meta.db_table)} m WHERE m.{qn('name')} = %s"
    )


def can_change_model(user: Any, model: RegisteredModel) -> bool:
    """Register versions and edit metadata: admins, or data scientists of the owning team."""
    if getattr(user, "is_staff", False) and user.is_active:
        return True
    return has_role(user, Role.DATA_SCIENTIST) and model.team.members.filter(pk=user.pk).exists()


def can_download_artifact(user: Any, model: RegisteredModel) -> bool:
    return can_change_model(user, model) or has_role(user, Role.APPROVER)


def model_for(user: Any, name: str) -> RegisteredModel:
    """The model if `user` may see it; 404 otherwise, so existence is not revealed."""
    model = models_visible_to(user).filter(name=name).first()
    if model is None:
        raise Http404("No such model.")
    return model


def model_list(
    user: Any, *, q: str = "", stage: str = "", tag: str = "", owner: str = "", team: str = ""
) -> QuerySet[RegisteredModel]:
    models = models_visible_to(user)
    if q:
        models = models.filter(Q(name__icontains=q) | Q(title__icontains=q) | Q(description__icontains=q))
    if stage:
        models = models.filter(versions__stage=stage)
    if tag:
        models = models.filter(tags__tag=tag)
    if owner:
        models = models.filter(owners__username=owner)
    if team:
        models = models.filter(team__slug=team)
    return models.distinct().prefetch_related(
        Prefetch("aliases", queryset=ModelAlias.objects.select_related("version"))
    )


def with_latest_version(models: QuerySet[RegisteredModel]) -> QuerySet[RegisteredModel]:
    """Annotate each model with its latest version's number and status (one query for the list)."""
    latest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-number")
    return models.annotate(
        latest_number=Subquery(latest.values("number")[:1]), latest_status=Subquery(latest.values("status")[:1])
    )


def team_choices_for(user: Any) -> list[tuple[str, str]]:
    """Teams owning a model the user can see (for the list filter)."""
    from accounts.models import Team

    visible = models_visible_to(user).values("team_id")
    return list(Team.objects.filter(pk__in=visible).values_list("slug", "name"))


def teams_for_create(user: Any) -> list[tuple[str, str]]:
    """Teams a new model may belong to: the user's own, or every team for admins."""
    from accounts.models import Team

    teams = Team.objects.all() if getattr(user, "is_staff", False) else user.teams.all()
    return list(teams.values_list("slug", "name"))


def versions_failed_untrusted() -> QuerySet[ModelVersion]:
    """Versions refused for types nobody trusts yet."""
    return ModelVersion.objects.filter(status="failed").exclude(untrusted_types=[]).select_related("model")


def versions_of(model: RegisteredModel) -> QuerySet[ModelVersion]:
    return model.versions.select_related("created_by", "parent").order_by("-number")


def version_for(user: Any, name: str, number: int) -> ModelVersion:
    model = model_for(user, name)
    version = versions_of(model).filter(number=number).first()
    if version is None:
        raise Http404("No such version.")
    return version


def aliases_of(model: RegisteredModel) -> dict[str, int]:
    return {a.name: a.version.number for a in model.aliases.select_related("version")}


def trusted_type_names() -> list[str]:
    return list(TrustedType.objects.values_list("name", flat=True))


def registry_policy() -> RegistryPolicy:
    policy, _ = RegistryPolicy.objects.get_or_create(pk=1)
    return policy


def version_timeline(version: ModelVersion) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(target_type="registry.modelversion", target_id=str(version.pk)).order_by("id")


def model_timeline(model: RegisteredModel) -> QuerySet[AuditEvent]:
    version_ids = [str(pk) for pk in model.versions.values_list("pk", flat=True)]
    return AuditEvent.objects.filter(
        Q(target_type="registry.registeredmodel", target_id=str(model.pk))
        | Q(target_type="registry.modelversion", target_id__in=version_ids)
    ).order_by("-id")


def signature_diff(a: ModelVersion, b: ModelVersion) -> list[dict[str, Any]]:
    """Per input column: added, removed, retyped (breaking) or changed categories."""
    left = {c["name"]: c for c in a.signature.get("inputs", [])}
    right = {c["name"]: c for c in b.signature.get("inputs", [])}
    rows = []
    for name in sorted(left.keys() | right.keys()):
        before, after = left.get(name), right.get(name)
        if before is None:
            rows.append({"column": name, "change": "added", "detail": after["dtype"], "breaking": False})
        elif after is None:
            rows.append({"column": name, "change": "removed", "detail": before["dtype"], "breaking": True})
        elif before["dtype"] != after["dtype"]:
            rows.append(
                {
                    "column": name,
                    "change": "retyped",
                    "breaking": True,
                    "detail": f"{before['dtype']} → {after['dtype']}",
                }
            )
        elif before.get("categories") != after.get("categories"):
            gained = sorted(set(after.get("categories") or []) - set(before.get("categories") or []))
            lost = sorted(set(before.get("categories") or []) - set(after.get("categories") or []))
            rows.append(
                {
                    "column": name,
                    "change": "categories",
                    "breaking": False,
                    "detail": f"new: {', '.join(gained) or '—'}; gone: {', '.join(lost) or '—'}",
                }
            )
    return rows


def metrics_comparison(a: ModelVersion, b: ModelVersion) -> list[dict[str, Any]]:
    names = sorted(set(a.metrics) | set(b.metrics))
    rows = []
    for name in names:
        left, right = a.metrics.get(name), b.metrics.get(name)
        delta = right - left if isinstance(left, (int, float)) and isinstance(right, (int, float)) else None
        rows.append({"metric": name, "a": left, "b": right, "delta": delta})
    return rows


# --- governance reads -----------------------------------------------------------------------------


def policy_for(model: RegisteredModel) -> Any:
    from registry.models import ApprovalPolicy

    return ApprovalPolicy.objects.filter(model=model).first() or ApprovalPolicy.objects.get(model=None)


def production_version(model: RegisteredModel) -> ModelVersion | None:
    return model.versions.filter(stage="production").first()


def previous_production(model: RegisteredModel, current: ModelVersion) -> ModelVersion | None:
    """The version that was in production just before `current` took over."""
    from registry.models import StageTransition

    entry = (StageTransition.objects.filter(model=model, to_stage="production").exclude(version=current)
             .select_related("version").order_by("-at", "-id").first())
    return entry.version if entry else None


def promotion_requests_visible_to(user: Any) -> QuerySet[Any]:
    from registry.models import PromotionRequest

    visible = models_visible_to(user).values("pk")
    return (PromotionRequest.objects.filter(version__model__in=visible)
            .select_related("version__model", "requester", "decided_by"))


def promotion_for(user: Any, pk: int) -> Any:
    request = promotion_requests_visible_to(user).filter(pk=pk).first()
    if request is None:
        raise Http404("No such promotion request.")
    return request


def production_history(model: RegisteredModel) -> list[dict[str, Any]]:
    """Intervals of production, newest first: version, from, until, how it got there and who approved it."""
    from registry.models import StageTransition

    entries = list(StageTransition.objects.filter(model=model, to_stage="production")
                   .select_related("version", "request", "actor").order_by("at", "id"))
    leaves = list(StageTransition.objects.filter(model=model, from_stage="production").order_by("at", "id"))
    history = []
    for entry in entries:
        left = next((t.at for t in leaves if t.version_id == entry.version_id and t.at >= entry.at), None)
        approvers = []
        if entry.request_id:
            approvers = [a.user.username for a in entry.request.approvals.select_related("user")
                         if a.decision == "approve"]
        history.append({"version": entry.version.number, "since": entry.at, "until": left, "kind": entry.kind,
                        "by": entry.actor.username if entry.actor else "system", "approved_by": approvers,
                        "request": entry.request_id, "reason": entry.reason})
    return list(reversed(history))


def in_production_at(model: RegisteredModel, moment: Any) -> dict[str, Any] | None:
    for interval in production_history(model):
        if interval["since"] <= moment and (interval["until"] is None or moment < interval["until"]):
            return interval
    return None


def promotion_requests_filtered(
    user: Any, *, status: str = "", model: str = "", awaiting: str = ""
) -> QuerySet[Any]:
    found = promotion_requests_visible_to(user)
    if status:
        found = found.filter(status=status)
    if model:
        found = found.filter(version__model__name=model)
    if awaiting == "me":
        found = found.filter(status="open").exclude(requester=user).exclude(approvals__user=user)
        if not user.is_staff:
            found = found.exclude(version__created_by=user)
    return found


def required_roles(policy: Any, target: str) -> dict[str, int]:
    """Approvals the policy asks for on `target`, per role."""
    return {role: int(n) for role, n in (policy.required_approvals.get(target) or {}).items() if int(n) > 0}


def approvals_by_role(request: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for role in request.approvals.filter(decision="approve").values_list("role", flat=True):
        counts[role] = counts.get(role, 0) + 1
    return counts


def approvals_missing(request: Any, policy: Any) -> dict[str, int]:
    have = approvals_by_role(request)
    return {role: n - have.get(role, 0) for role, n in required_roles(policy, request.target).items()
            if have.get(role, 0) < n}


def policies_by_model() -> dict[int | None, Any]:
    """Every approval policy by model id (`None` is the default), for pages listing many requests."""
    from registry.models import ApprovalPolicy

    return {p.model_id: p for p in ApprovalPolicy.objects.all()}


def promotions_awaiting(user: Any, *, model: str = "") -> list[Any]:
    """Open requests this person may still decide and whose policy still needs one of their roles."""
    policies = policies_by_model()
    roles = set(user_roles(user)) | ({str(Role.APPROVER)} if user.is_staff else set())
    found = promotion_requests_filtered(user, model=model, awaiting="me").prefetch_related("overrides")
    return [p for p in found
            if roles & set(approvals_missing(p, policies.get(p.version.model_id) or policies[None]))]

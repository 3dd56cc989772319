"""Business feedback writes: campaigns and their audiences, comments, sign-offs, retraining requests,
ground-truth labels. Outcome uploads live in `feedback.outcomes`, the analysis in `feedback.analysis`.

Assignment is deterministic: within each score decile of the audience, entities are
ordered by SHA-256 of "<campaign seed>:<entity id>" and the first ones (by the arms'
planned shares, largest remainder) go to the holdout, the next to each treatment arm.
The same audience and seed always give the same groups, and every decile is split
in the planned proportions (±1 entity).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.notifications import notify
from accounts.services import audit_record
from feedback import ingest
from feedback.models import (
    Arm,
    Assignment,
    Campaign,
    CampaignComment,
    CampaignSignOff,
    CampaignStatus,
    Direction,
    Kpi,
    KpiKind,
    Label,
    SignOffDecision,
    Targeting,
)
from opsportal.errors import DomainError
from opsportal.roles import Role, has_role
from registry.models import AliasName, ModelAlias, ModelVersion, RegisteredModel, Task
from scoring.batch import scored_entities

MSG_NO_KPI = "Add at least one KPI (for example churned_90d, lower is better)."
MSG_KPI_NAME = "KPI names use letters, digits, “_”, “-” or “.” (at most 64), e.g. churned_90d."
MSG_DUPLICATE_NAMES = "Names must be unique: {names}."
MSG_NO_TREATMENT = "Add at least one treatment arm (the group that gets the action)."
MSG_HOLDOUT_SHARE = "The holdout share must be between 0 and 1 (for example 0.1 for 10%)."
MSG_ARM_SHARES = "Arm shares must be positive and add up to 1 together with the holdout share."
MSG_TOP_N = "“Top N” targeting needs N, the number of entities to pick."
MSG_THRESHOLD = "Threshold targeting needs the score threshold."
MSG_VERSION_OF_MODEL = "Version {number} is not a version of {model}."
MSG_ALIAS = "Unknown alias {alias!r}: use champion or challenger."
MSG_ALIAS_UNSET = "{model} has no {alias} yet; choose a version."
MSG_LOCKED = "Outcomes have arrived for this campaign, so its audience can no longer change."
MSG_JOB_MODEL = "Scoring job #{job} scored {job_model}, not this campaign's model ({model})."
MSG_JOB_VERSION = "Scoring job #{job} used v{job_version}, but the campaign is for v{version}."
MSG_JOB_UNFINISHED = "Scoring job #{job} has not finished yet."
MSG_EMPTY_AUDIENCE = "Nobody in the list matches the targeting rule, so there is no audience."
MSG_AUDIENCE_TOO_BIG = "The audience has {rows:,} entities; at most {limit:,} are accepted."
MSG_UNKNOWN_GROUP = "group: {group!r} is not an arm of this campaign ({arms})."
MSG_DUPLICATE_ENTITY = "entity_id {entity!r} already appears in row {row}."
MSG_REASON_NEEDED = "Say why: the reason is kept with the sign-off."
MSG_SIGN_OFF_ROLE = "Only business owners (and admins) sign off a campaign's result."
MSG_RETRAIN_ROLE = "Only business owners and approvers ask for retraining."
MSG_TOO_MANY_LABELS = "The file has {rows:,} rows; at most {limit:,} labels are accepted in one file."
MSG_LABEL_CLASS = "label: {value!r} is not one of the model's classes ({classes})."
KPI_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
DECILES = 10
ASSIGN_BATCH = 5000


class CampaignError(DomainError):
    pass


def _invalid(field_name: str, message: str) -> CampaignError:
    return CampaignError("validation_error", message, details={field_name: [message]})


# --- creating a campaign ---------------------------------------------------------------------------


@dataclass
class KpiSpec:
    name: str
    label: str = ""
    kind: str = KpiKind.BINARY
    direction: str = Direction.HIGHER
    value_per_unit: Decimal | None = None
    is_primary: bool = False
    missing_as_zero: bool = False


@dataclass
class CampaignSpec:
    name: str
    description: str
    kpis: list[KpiSpec]
    arms: list[str] = field(default_factory=lambda: ["treatment"])
    arm_shares: list[float] | None = None
    holdout_name: str = "holdout"
    holdout_share: float = 0.1
    version_number: int | None = None
    alias: str = ""
    targeting: str = Targeting.ALL
    target_count: int | None = None
    score_threshold: float | None = None
    business_owner: Any = None
    seed: str = ""


def _check_names(names: list[str], field_name: str) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _invalid(field_name, MSG_DUPLICATE_NAMES.format(names=", ".join(duplicates)))


def _check_kpis(kpis: list[KpiSpec]) -> None:
    if not kpis:
        raise _invalid("kpis", MSG_NO_KPI)
    if any(not KPI_NAME.match(k.name) for k in kpis):
        raise _invalid("kpis", MSG_KPI_NAME)
    _check_names([k.name for k in kpis], "kpis")


def _arm_shares(spec: CampaignSpec) -> list[float]:
    if not 0 <= spec.holdout_share < 1:
        raise _invalid("holdout_share", MSG_HOLDOUT_SHARE)
    if not spec.arms:
        raise _invalid("arms", MSG_NO_TREATMENT)
    _check_names([*spec.arms, spec.holdout_name], "arms")
    if spec.arm_shares is None:
        return [(1 - spec.holdout_share) / len(spec.arms)] * len(spec.arms)
    shares = list(spec.arm_shares)
    if len(shares) != len(spec.arms) or any(s <= 0 for s in shares) or not math.isclose(
            sum(shares) + spec.holdout_share, 1, abs_tol=1e-6):
        raise _invalid("arm_shares", MSG_ARM_SHARES)
    return shares


def _check_targeting(spec: CampaignSpec) -> None:
    if spec.targeting == Targeting.TOP_N and not spec.target_count:
        raise _invalid("target_count", MSG_TOP_N)
    if spec.targeting == Targeting.THRESHOLD and spec.score_threshold is None:
        raise _invalid("score_threshold", MSG_THRESHOLD)


def _fixed_version(model: RegisteredModel, spec: CampaignSpec) -> ModelVersion | None:
    if spec.alias and spec.alias not in AliasName.values:
        raise _invalid("alias", MSG_ALIAS.format(alias=spec.alias))
    if spec.version_number is None:
        return None
    version = model.versions.filter(number=spec.version_number).first()
    if version is None:
        raise _invalid("version", MSG_VERSION_OF_MODEL.format(number=spec.version_number, model=model.name))
    return version


def campaign_create(*, user: Any, model: RegisteredModel, spec: CampaignSpec, ip: str | None = None) -> Campaign:
    _check_kpis(spec.kpis)
    shares = _arm_shares(spec)
    _check_targeting(spec)
    version = _fixed_version(model, spec)
    primary = next((k.name for k in spec.kpis if k.is_primary), spec.kpis[0].name)
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=spec.name, description=spec.description, business_owner=spec.business_owner, model=model,
            version=version, alias="" if version else spec.alias, targeting=spec.targeting,
            target_count=spec.target_count, score_threshold=spec.score_threshold, holdout_share=spec.holdout_share,
            seed=spec.seed or secrets.token_hex(8), created_by=user)
        Arm.objects.create(campaign=campaign, name=spec.holdout_name, is_holdout=True, share=spec.holdout_share)
        Arm.objects.bulk_create([Arm(campaign=campaign, name=name, share=share)
                                 for name, share in zip(spec.arms, shares, strict=True)])
        Kpi.objects.bulk_create([Kpi(campaign=campaign, name=k.name, label=k.label, kind=k.kind,
                                     direction=k.direction, value_per_unit=k.value_per_unit,
                                     missing_as_zero=k.missing_as_zero, is_primary=k.name == primary)
                                 for k in spec.kpis])
        audit_record(actor=user, action="campaign.created", target=campaign, ip=ip, payload={
            "model": model.name, "version": version.number if version else None, "alias": campaign.alias,
            "arms": [spec.holdout_name, *spec.arms], "kpis": [k.name for k in spec.kpis],
            "holdout_share": spec.holdout_share, "targeting": spec.targeting})
    return campaign


# --- the audience -------------------------------------------------------------------------------------


@dataclass
class Candidate:
    entity_id: str
    score: float | None
    group: str = ""


@dataclass
class AssignmentReport:
    assigned: int
    skipped: int
    errors: list[dict[str, Any]]
    by_arm: dict[str, int]


def _hash_key(seed: str, entity_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{entity_id}".encode()).digest()


def deciles_of(candidates: list[Candidate]) -> dict[str, int | None]:
    """Score decile of each entity within the audience: 1 holds the highest scores."""
    scored = sorted((c for c in candidates if c.score is not None), key=lambda c: (-c.score, c.entity_id))
    n = len(scored)
    found: dict[str, int | None] = {c.entity_id: None for c in candidates}
    for rank, candidate in enumerate(scored):
        found[candidate.entity_id] = rank * DECILES // n + 1
    return found


def _counts(n: int, shares: list[float]) -> list[int]:
    """Split n by shares with the largest-remainder rule (ties to the earlier arm)."""
    total = sum(shares)
    exact = [n * s / total for s in shares]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign_groups(seed: str, candidates: list[Candidate], arms: list[Arm]) -> dict[str, tuple[Arm, int | None]]:
    """Entity → (arm, decile), stratified by decile and ordered by the seeded hash within each."""
    deciles = deciles_of(candidates)
    strata: dict[int | None, list[str]] = {}
    for candidate in candidates:
        strata.setdefault(deciles[candidate.entity_id], []).append(candidate.entity_id)
    ordered_arms = sorted(arms, key=lambda a: (not a.is_holdout, a.pk))
    shares = [a.share for a in ordered_arms]
    result: dict[str, tuple[Arm, int | None]] = {}
    for decile, entities in strata.items():
        entities.sort(key=lambda e: _hash_key(seed, e))
        start = 0
        for arm, count in zip(ordered_arms, _counts(len(entities), shares), strict=True):
            for entity in entities[start:start + count]:
                result[entity] = (arm, decile)
            start += count
    return result


def _target(campaign: Campaign, candidates: list[Candidate]) -> list[Candidate]:
    if campaign.targeting == Targeting.TOP_N:
        ranked = sorted((c for c in candidates if c.score is not None), key=lambda c: (-c.score, c.entity_id))
        return ranked[: campaign.target_count]
    if campaign.targeting == Targeting.THRESHOLD:
        return [c for c in candidates if c.score is not None and c.score >= campaign.score_threshold]
    return candidates


def _resolve_version(campaign: Campaign) -> ModelVersion | None:
    """The version that picks the audience: the fixed one, or the alias's version right now (then kept)."""
    if campaign.version_id or not campaign.alias:
        return campaign.version
    pk = ModelAlias.objects.filter(model=campaign.model, name=campaign.alias).values_list("version_id", flat=True)
    version = ModelVersion.objects.filter(pk__in=pk).first()
    if version is None:
        raise CampaignError("no_alias", MSG_ALIAS_UNSET.format(model=campaign.model.name, alias=campaign.alias),
                            status=409)
    return version


def _refuse_if_locked(campaign: Campaign) -> None:
    if campaign.outcomes.exists():
        raise CampaignError("conflict", MSG_LOCKED, status=409)


def _store(campaign: Campaign, placed: dict[str, tuple[Arm, int | None]], scores: dict[str, float | None],
           version: ModelVersion | None) -> None:
    campaign.assignments.all().delete()
    rows = (Assignment(campaign=campaign, entity_id=entity, arm=arm, decile=decile, score=scores.get(entity),
                       version=version) for entity, (arm, decile) in placed.items())
    batch: list[Assignment] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= ASSIGN_BATCH:
            Assignment.objects.bulk_create(batch)
            batch = []
    Assignment.objects.bulk_create(batch)


def _commit_audience(campaign: Campaign, *, user: Any, placed: dict[str, tuple[Arm, int | None]],
                     scores: dict[str, float | None], version: ModelVersion | None, source: str,
                     skipped: int, errors: list[dict[str, Any]], ip: str | None) -> AssignmentReport:
    if not placed:
        raise CampaignError("validation_error", MSG_EMPTY_AUDIENCE, details={"errors": errors[:100]})
    if len(placed) > settings.FEEDBACK_MAX_AUDIENCE_ROWS:
        raise CampaignError("too_large", MSG_AUDIENCE_TOO_BIG.format(
            rows=len(placed), limit=settings.FEEDBACK_MAX_AUDIENCE_ROWS), status=413)
    by_arm: dict[str, int] = {}
    for arm, _ in placed.values():
        by_arm[arm.name] = by_arm.get(arm.name, 0) + 1
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        _refuse_if_locked(locked)
        _store(locked, placed, scores, version)
        Campaign.objects.filter(pk=campaign.pk).update(
            status=CampaignStatus.RUNNING, version=version, data_version=F("data_version") + 1,
            updated_at=timezone.now())
        audit_record(actor=user, action="campaign.audience_assigned", target=campaign, ip=ip, payload={
            "source": source, "assigned": len(placed), "skipped": skipped, "by_arm": by_arm,
            "version": version.number if version else None})
        _queue_analysis(campaign.pk)
    campaign.refresh_from_db()
    return AssignmentReport(assigned=len(placed), skipped=skipped, errors=errors[:1000], by_arm=by_arm)


def _queue_analysis(campaign_id: int) -> None:
    from feedback.tasks import campaign_analyse

    transaction.on_commit(lambda: campaign_analyse.delay(campaign_id), robust=True)


def _unique(candidates: Iterable[tuple[int, Candidate]], errors: list[dict[str, Any]]) -> list[Candidate]:
    seen: dict[str, int] = {}
    kept = []
    for number, candidate in candidates:
        if candidate.entity_id in seen:
            errors.append(ingest.row_error(number, MSG_DUPLICATE_ENTITY.format(
                entity=candidate.entity_id, row=seen[candidate.entity_id]), {"entity_id": candidate.entity_id}))
            continue
        seen[candidate.entity_id] = number
        kept.append(candidate)
    return kept


def _scored_candidates(rows: Iterable[ingest.Row], errors: list[dict[str, Any]], *,
                       with_group: bool) -> list[Candidate]:
    parsed = []
    for number, row in rows:
        try:
            if not isinstance(row, dict):
                raise ValueError(ingest.MSG_ROW_NOT_OBJECT)
            entity = ingest.text(row, "entity_id")
            score = ingest.number(row, "score", required=not with_group)
            group = ingest.text(row, "group", 100) if with_group else ""
        except ValueError as problem:
            errors.append(ingest.row_error(number, str(problem), row if isinstance(row, dict) else None))
            continue
        parsed.append((number, Candidate(entity, score, group)))
    return _unique(parsed, errors)


def audience_from_job(*, campaign: Campaign, job: Any, user: Any, ip: str | None = None) -> AssignmentReport:
    """Target and assign the rows of a finished batch scoring job (its id column is the entity id)."""
    if job.model_id != campaign.model_id:
        raise CampaignError("validation_error", MSG_JOB_MODEL.format(job=job.pk, job_model=job.model.name,
                                                                     model=campaign.model.name))
    if not job.is_finished:
        raise CampaignError("conflict", MSG_JOB_UNFINISHED.format(job=job.pk), status=409)
    if campaign.version_id and campaign.version_id != job.version_id:
        raise CampaignError("validation_error", MSG_JOB_VERSION.format(
            job=job.pk, job_version=job.version.number, version=campaign.version.number))
    errors: list[dict[str, Any]] = []
    candidates = _unique(((r + 1, Candidate(e, s)) for r, e, s in scored_entities(job)), errors)
    audience = _target(campaign, candidates)
    placed = assign_groups(campaign.seed, audience, list(campaign.arms.all()))
    return _commit_audience(campaign, user=user, placed=placed, scores={c.entity_id: c.score for c in audience},
                            version=job.version, source=f"scoring job #{job.pk}",
                            skipped=len(candidates) - len(audience), errors=errors, ip=ip)


def audience_from_scores(*, campaign: Campaign, rows: Iterable[ingest.Row], user: Any,
                         ip: str | None = None) -> AssignmentReport:
    """Target and assign an uploaded scored list (entity_id, score)."""
    errors: list[dict[str, Any]] = []
    candidates = _scored_candidates(rows, errors, with_group=False)
    version = _resolve_version(campaign)
    audience = _target(campaign, candidates)
    placed = assign_groups(campaign.seed, audience, list(campaign.arms.all()))
    return _commit_audience(campaign, user=user, placed=placed, scores={c.entity_id: c.score for c in audience},
                            version=version, source="scored list", skipped=len(candidates) - len(audience),
                            errors=errors, ip=ip)


def audience_bring_your_own(*, campaign: Campaign, rows: Iterable[ingest.Row], user: Any,
                            ip: str | None = None) -> AssignmentReport:
    """Take groups as given (entity_id, group[, score]): how past campaigns are analysed."""
    errors: list[dict[str, Any]] = []
    arms = {arm.name: arm for arm in campaign.arms.all()}
    placed_candidates = []
    for candidate in _scored_candidates(rows, errors, with_group=True):
        if candidate.group not in arms:
            errors.append({"row": None, "entity_id": candidate.entity_id, "error": MSG_UNKNOWN_GROUP.format(
                group=candidate.group, arms=", ".join(arms))})
            continue
        placed_candidates.append(candidate)
    deciles = deciles_of(placed_candidates)
    placed = {c.entity_id: (arms[c.group], deciles[c.entity_id]) for c in placed_candidates}
    version = _resolve_version(campaign) if campaign.alias or campaign.version_id else None
    return _commit_audience(campaign, user=user, placed=placed,
                            scores={c.entity_id: c.score for c in placed_candidates}, version=version,
                            source="bring your own", skipped=0, errors=errors, ip=ip)


# --- what people say about the result ------------------------------------------------------------------


def _people_of(campaign: Campaign) -> list[Any]:
    """The model's team, the campaign's owner and its creator."""
    people = list(campaign.model.team.members.filter(is_active=True))
    return people + [u for u in (campaign.business_owner, campaign.created_by) if u is not None]


def _url(campaign: Campaign) -> str:
    return f"/campaigns/{campaign.pk}/"


def campaign_comment(*, campaign: Campaign, user: Any, body: str, ip: str | None = None) -> CampaignComment:
    with transaction.atomic():
        comment = CampaignComment.objects.create(campaign=campaign, version=campaign.version, author=user, body=body)
        audit_record(actor=user, action="campaign.commented", target=campaign, ip=ip,
                     payload={"comment": comment.pk, "version": campaign.version.number if campaign.version else None})
        notify(event="campaign.commented", title=f"{user} commented on campaign “{campaign.name}”",
               body=body[:1000], url=_url(campaign),
               recipients=[p for p in _people_of(campaign) if p.pk != user.pk])
    return comment


def campaign_sign_off(*, campaign: Campaign, user: Any, decision: str, reason: str, summary: str = "",
                      ip: str | None = None) -> CampaignSignOff:
    """Accept or reject the business result, with a reason; audited and shown on the model version's page."""
    if not has_role(user, Role.BUSINESS_OWNER):
        raise CampaignError("permission_denied", MSG_SIGN_OFF_ROLE, status=403)
    if decision not in SignOffDecision.values:
        raise _invalid("decision", f"Choose one of: {', '.join(SignOffDecision.values)}.")
    if not reason.strip():
        raise _invalid("reason", MSG_REASON_NEEDED)
    with transaction.atomic():
        sign_off = CampaignSignOff.objects.create(campaign=campaign, version=campaign.version, user=user,
                                                  decision=decision, reason=reason.strip(), summary=summary)
        audit_record(actor=user, action="campaign.signed_off", target=campaign, ip=ip, payload={
            "sign_off": sign_off.pk, "decision": decision, "reason": sign_off.reason, "summary": summary,
            "version": campaign.version.number if campaign.version else None})
        verb = "accepted" if decision == SignOffDecision.ACCEPT else "rejected"
        notify(event="campaign.signed_off", title=f"{user} {verb} the result of campaign “{campaign.name}”",
               body=sign_off.reason, url=_url(campaign), recipients=[p for p in _people_of(campaign)
                                                                      if p.pk != user.pk])
    return sign_off


def campaign_request_retraining(*, campaign: Campaign, user: Any, reason: str, ip: str | None = None) -> None:
    """Ask the model's data scientists (their inbox) to retrain: the campaign shows the model falls short."""
    if not has_role(user, Role.BUSINESS_OWNER, Role.APPROVER):
        raise CampaignError("permission_denied", MSG_RETRAIN_ROLE, status=403)
    if not reason.strip():
        raise _invalid("reason", MSG_REASON_NEEDED)
    scientists = campaign.model.team.members.filter(is_active=True, groups__name=str(Role.DATA_SCIENTIST))
    with transaction.atomic():
        audit_record(actor=user, action="campaign.retraining_requested", target=campaign, ip=ip, payload={
            "model": campaign.model.name, "reason": reason.strip(),
            "version": campaign.version.number if campaign.version else None})
        notify(event="retraining.requested",
               title=f"{user} asks to retrain {campaign.model.name} (campaign “{campaign.name}”)",
               body=reason.strip(), url=_url(campaign), recipients=list(scientists))


# --- ground-truth labels ---------------------------------------------------------------------------


@dataclass
class UpsertReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)


def _label_classes(model: RegisteredModel) -> list[Any] | None:
    version = model.versions.filter(status="ready").order_by("-number").first()
    classes = (version.signature.get("output", {}) if version else {}).get("classes")
    return list(classes) if classes else None


def _label_value(row: dict[str, Any], model: RegisteredModel, classes: list[Any] | None) -> Any:
    if model.task == Task.REGRESSION:
        return ingest.number(row, "label")
    raw = row.get("label")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueError(ingest.MSG_EMPTY_FIELD.format(field="label"))
    if classes is None:
        return raw.strip() if isinstance(raw, str) else raw
    by_text = {str(c): c for c in classes}
    if str(raw).strip() not in by_text:
        raise ValueError(MSG_LABEL_CLASS.format(value=raw, classes=", ".join(map(str, classes[:20]))))
    return by_text[str(raw).strip()]


def _parse_labels(rows: Iterable[ingest.Row], model: RegisteredModel, report: UpsertReport) -> dict[str, tuple]:
    classes = _label_classes(model)
    now = timezone.now()
    good: dict[str, tuple] = {}
    for number, row in rows:
        try:
            if not isinstance(row, dict):
                raise ValueError(ingest.MSG_ROW_NOT_OBJECT)
            entity = ingest.text({"id": row.get("id", row.get("entity_id"))}, "id")
            value = _label_value(row, model, classes)
            observed = ingest.moment(row)
        except ValueError as problem:
            report.errors.append(ingest.row_error(number, str(problem), row if isinstance(row, dict) else None))
            continue
        if entity in good:
            report.errors.append(ingest.row_error(number, MSG_DUPLICATE_ENTITY.format(
                entity=entity, row=good[entity][0]), {"id": entity}))
            continue
        good[entity] = (number, value, observed, now)
    return good


def labels_upsert(*, model: RegisteredModel, user: Any, rows: Iterable[ingest.Row],
                  ip: str | None = None) -> UpsertReport:
    """Insert or update labels by entity id; rows that do not parse are reported, the others kept.
    Sending the same rows again changes nothing (a missing observed_at keeps the stored one)."""
    report = UpsertReport()
    for batch in ingest.chunks(rows, ASSIGN_BATCH):
        good = _parse_labels(batch, model, report)
        existing = {e: (v, o) for e, v, o in Label.objects.filter(model=model, entity_id__in=list(good))
                    .values_list("entity_id", "label", "observed_at")}
        write = []
        for entity, (_, value, observed, now) in good.items():
            before = existing.get(entity)
            when = observed or (before[1] if before else now)
            if before is not None and before == (value, when):
                report.unchanged += 1
                continue
            report.created += before is None
            report.updated += before is not None
            write.append(Label(model=model, entity_id=entity, label=value, observed_at=when))
        Label.objects.bulk_create(write, update_conflicts=True, unique_fields=["model", "entity_id"],
                                  update_fields=["label", "observed_at", "updated_at"])
    if report.created or report.updated:
        audit_record(actor=user, action="labels.uploaded", target=model, ip=ip, payload={
            "created": report.created, "updated": report.updated, "unchanged": report.unchanged,
            "failed": report.failed})
        # Realized performance of recent monitoring runs is recomputed with the new labels.
        transaction.on_commit(lambda: _refresh_performance(model.pk), robust=True)
    return report


def _refresh_performance(model_id: int) -> None:
    from monitoring.tasks import performance_refresh

    performance_refresh.delay(model_id)


def labels_from_file(*, model: RegisteredModel, user: Any, upload: Any, ip: str | None = None) -> UpsertReport:
    """A CSV file with id,label[,observed_at], bounded in rows."""
    from registry import artifacts

    with artifacts.uploaded_to_path(upload) as path:
        ingest.csv_header(path, ("id", "label"))
        rows = ingest.csv_row_count(path)
        if rows > settings.FEEDBACK_MAX_AUDIENCE_ROWS:
            raise CampaignError("too_large", MSG_TOO_MANY_LABELS.format(
                rows=rows, limit=settings.FEEDBACK_MAX_AUDIENCE_ROWS), status=413)
        return labels_upsert(model=model, user=user, rows=ingest.csv_rows(path), ip=ip)

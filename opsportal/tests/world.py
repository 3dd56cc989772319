"""One small, real OpsPortal world for the hardening tests: every kind of object a URL can name.

Built once per test module inside an outer transaction that is rolled back at the end, so the
permission matrix and the fuzzer can send hundreds of requests without re-validating a model
(a sandboxed subprocess) for each. Each request runs in a savepoint that is rolled back too,
so one role's POST never changes what the next role sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from accounts.models import Team
from accounts.notifications import webhook_create
from accounts.services import token_create
from feedback import outcomes
from feedback import services as feedback_services
from feedback.models import Campaign, OutcomeUpload
from feedback.services import CampaignSpec, KpiSpec
from monitoring import services as monitoring_services
from monitoring.models import Alert, AlertKind, AlertRule, MonitoringRun, Severity
from opsportal.models import WorkerPing
from opsportal.roles import Role
from registry import promotions
from registry import services as registry_services
from registry.models import ModelVersion, PromotionRequest, RegisteredModel, TrustedType
from registry.tests.fixtures import churn_frame, churn_pipeline, csv_bytes, skops_bytes, upload
from retraining import services as retraining_services
from retraining.models import RetrainingRun
from retraining.models import Trigger as RetrainTrigger
from scoring import batch
from scoring.models import ScoringJob

PASSWORD = "correct-horse-battery-9"

# Role keys used by the matrix, from least to most privileged.
ROLES = ("anonymous", "outsider", "other_ds", "owner_ds", "business_owner", "approver", "admin")


@dataclass
class World:
    users: dict[str, User]
    tokens: dict[str, str]
    model: RegisteredModel
    champion: ModelVersion
    promotion: PromotionRequest
    job: ScoringJob
    run: MonitoringRun
    alert: Alert
    rule: AlertRule
    campaign: Campaign
    outcome_upload: OutcomeUpload
    retraining_run: RetrainingRun
    webhook_pk: int
    ping: WorkerPing
    trusted_type: TrustedType
    token_pk: int
    extra: dict[str, Any] = field(default_factory=dict)


def _user(username: str, *roles: Role, team: str | None = None, staff: bool = False) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=staff, is_superuser=staff)
    user.groups.set(Group.objects.filter(name__in=[str(r) for r in roles]))
    if team:
        Team.objects.get_or_create(slug=team, defaults={"name": team.title()})[0].members.add(user)
    return user


def _users() -> dict[str, User]:
    return {
        "outsider": _user("h-otto"),
        "other_ds": _user("h-ravi", Role.DATA_SCIENTIST, team="risk"),
        "owner_ds": _user("h-dana", Role.DATA_SCIENTIST, team="data-science"),
        "business_owner": _user("h-bo", Role.BUSINESS_OWNER),
        "approver": _user("h-april", Role.APPROVER),
        "admin": _user("h-root", staff=True),
    }


def _validated_version(model: RegisteredModel, owner: User, **fields: Any) -> ModelVersion:
    spec = registry_services.VersionUpload(
        artifact=upload(skops_bytes(churn_pipeline())), format="skops",
        reference=upload(csv_bytes(churn_frame()), "reference.csv"), target_column="Churn", **fields)
    version = registry_services.version_register(model=model, user=owner, upload=spec)
    registry_services.version_validate(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == "ready", version.status_reason
    return version


def _governed_versions(users: dict[str, User]) -> tuple[RegisteredModel, ModelVersion, PromotionRequest]:
    owner = users["owner_ds"]
    model = registry_services.model_create(user=owner, name="churn", task="binary_classification",
                                           title="Customer churn")
    card = {"description": "Logistic regression on tenure and contract.", "intended_use": "Retention emails."}
    champion = _validated_version(model, owner, metrics={"auc": 0.84}, **card)
    first = promotions.promotion_open(version=champion, user=owner, target="production", justification="First.")
    promotions.promotion_gates_evaluate(request_id=first.pk)
    promotions.promotion_decide(request=first, user=users["approver"], decision="approve")
    # A pending request (its gates never measured: nothing commits) is all the approval URLs need.
    request = promotions.promotion_open(version=champion, user=owner, target="staging", justification="Also staging.")
    return model, champion, request


def _campaign(model: RegisteredModel, users: dict[str, User]) -> tuple[Campaign, OutcomeUpload]:
    owner = users["business_owner"]
    spec = CampaignSpec(name="Retention email", description="A discount email.", seed="s33d", business_owner=owner,
                        kpis=[KpiSpec("churned", label="90-day churn", direction="lower", value_per_unit=150)],
                        holdout_share=0.2)
    campaign = feedback_services.campaign_create(user=owner, model=model, spec=spec)
    scored = [(i, {"entity_id": f"c{i}", "score": i / 200}) for i in range(1, 201)]
    feedback_services.audience_from_scores(campaign=campaign, rows=scored, user=owner)
    body = [{"entity_id": f"c{i}", "kpi": "churned", "value": i % 2} for i in range(1, 201)]
    return campaign, outcomes.outcomes_from_json(campaign=campaign, user=owner, body=body)


def _retraining_run(model: RegisteredModel, owner: User) -> RetrainingRun:
    frame = churn_frame(300)
    frame.insert(0, "observed_on", [f"2026-01-{1 + i % 28:02d}" for i in range(len(frame))])
    data = retraining_services.RecipeInput(target_column="Churn", estimator="LogisticRegression",
                                           hyperparameters={"max_iter": 300}, split_column="observed_on",
                                           holdout_fraction=0.25)
    retraining_services.recipe_save(model=model, user=owner, data=data, dataset=upload(csv_bytes(frame), "train.csv"))
    return retraining_services.run_start(model=model, trigger=RetrainTrigger.MANUAL, user=owner)


def _with_report(run: MonitoringRun) -> None:
    """A stored report, so the sandboxed report page has something to serve."""
    key = default_storage.save(f"reports/hardening-{run.pk}.html", ContentFile(b"<html><body>report</body></html>"))
    MonitoringRun.objects.filter(pk=run.pk).update(report_key=key)
    run.refresh_from_db()


def build_world() -> World:
    users = _users()
    tokens = {role: token_create(user=user, name="hardening", expires_in_days=1)[1] for role, user in users.items()}
    model, champion, request = _governed_versions(users)
    owner, admin = users["owner_ds"], users["admin"]
    frame = churn_frame(50).drop(columns=["Churn"])
    frame.insert(0, "customer_id", [f"c{i}" for i in range(len(frame))])
    job = batch.job_create(model=model, version=champion, user=owner, upload=upload(csv_bytes(frame), "batch.csv"),
                           id_column="customer_id")
    run = monitoring_services.run_request(model=model, user=owner)
    alert, _ = monitoring_services.alert_raise(model=model, key="hardening", kind=AlertKind.OTHER,
                                               severity=Severity.WARNING, title="Hardening alert", version=champion)
    rule = monitoring_services.rule_create(model=model, user=owner, metric="drift_share", comparison="gt",
                                           threshold=0.5)
    campaign, outcome_upload = _campaign(model, users)
    _with_report(run)
    webhook, _ = webhook_create(admin=admin, name="Hooks", url="http://127.0.0.1:9/hook")
    trusted = registry_services.trusted_type_add(admin=admin, name="sklearn.tree._tree.Tree", reason="Reviewed.")
    return World(users=users, tokens=tokens, model=model, champion=champion, promotion=request,
                 job=job, run=run, alert=alert, rule=rule, campaign=campaign, outcome_upload=outcome_upload,
                 retraining_run=_retraining_run(model, owner), webhook_pk=webhook.pk,
                 ping=WorkerPing.objects.create(requested_by=admin), trusted_type=trusted,
                 token_pk=token_create(user=owner, name="to revoke", expires_in_days=1)[0].pk)


@contextmanager
def world_in_transaction(django_db_blocker: Any) -> Iterator[World]:
    """Build the world in a transaction that is always rolled back (nothing leaks to other tests)."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            world = build_world()
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    try:
        yield world
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run one request in a savepoint and undo whatever it wrote."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)

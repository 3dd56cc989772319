"""A realistic demo world, generated in code from a fixed seed: the whole loop with numbers to read.

The story (about 90 days, today included):

1. people: one user per role (data scientist, approver, business owner, admin), random passwords;
2. `churn` v1: a real scikit-learn pipeline, registered and validated by the registry (sandbox
   subprocess), promoted to production through a promotion request and an approval;
3. traffic: every day customers are scored by the product's own predict service and logged;
   their monthly charges creep up (a price rise), so drift grows in that one feature, and
   churn becomes more price- and age-sensitive than v1 learned;
4. a retention campaign on four weeks of the riskiest customers, with a 20% holdout assigned by
   the product; the offer really lowers churn, and outcomes arrive over the following weeks;
5. weekly monitoring runs over the log (drift, quality, estimated performance, service health,
   Evidently reports) with the default alert rules plus the team's own drift rule: alerts open;
6. churn labels arrive 30 days after each prediction (the last month has none yet); uploading
   them makes the product recompute the realized performance of the runs they cover;
7. a retraining recipe (weekly cron, drift trigger): the open drift alert triggers a run that
   trains v2 on the labelled predictions, compares it with v1 on held-out rows, registers,
   validates and gates it, and opens the promotion request that waits for an approver.

Everything slow runs inline, exactly as a worker would run it (Celery tasks execute eagerly while
seeding), so every figure on every page is computed by the product from these rows. Only dates are
set by hand: runs, predictions and the first promotion are moved back to when they "happened".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import Team
from opsportal.roles import Role

MODEL_NAME = "churn"
TEAM_SLUG = "customer-analytics"
NUMERIC = ["tenure", "MonthlyCharges", "SeniorCitizen"]
CATEGORICAL = ["Contract", "PaymentMethod"]
TARGET = "Churn"
CONTRACTS = ["Month-to-month", "One year", "Two year"]
PAYMENTS = ["Electronic check", "Mailed check", "Bank transfer", "Credit card"]
PRICE_RISE = 30.0  # euros added to monthly charges by the last day: the drifting feature
LABEL_DELAY = timedelta(days=30)  # churn is known a month after the prediction
CAMPAIGN_EFFECT = 0.7  # the retention offer multiplies a treated customer's churn probability by this

# Who is who (usernames are printed with their passwords).
PEOPLE: dict[str, tuple[str, str, tuple[Role, ...], bool]] = {
    # key: (username, full name, roles, in the model's team)
    "data_scientist": ("dana", "Dana Scott", (Role.DATA_SCIENTIST,), True),
    "approver": ("april", "April Novak", (Role.APPROVER,), False),
    "business_owner": ("bruno", "Bruno Keller", (Role.BUSINESS_OWNER,), False),
    "admin": ("admin", "Ada Admin", (), True),
}
ROLE_LABELS = {"data_scientist": "data scientist", "approver": "approver", "business_owner": "business owner",
               "admin": "admin"}


class DemoError(RuntimeError):
    """The seeded story did not come out as told (a bug to fix, never to hide)."""


@dataclass(frozen=True)
class Size:
    """How much history to generate; tests use smaller worlds than the demo."""

    days: int = 91
    per_day: int = 150
    batches_per_day: int = 6
    training_rows: int = 1500
    campaign_days: tuple[int, int] = (14, 42)  # customers scored on these days (from the start) are targeted
    campaign_top: int = 1600
    run_every_days: int = 7


FULL = Size()


@dataclass
class Demo:
    """What the seeding made, for printing and for tests."""

    size: Size
    start: datetime
    rng: np.random.Generator
    users: dict[str, User] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    model: Any = None
    champion: Any = None
    challenger: Any = None
    promotion: Any = None
    campaign: Any = None
    retraining_run: Any = None
    truth: dict[str, float] = field(default_factory=dict)  # entity id -> true churn probability when scored
    scored_at: dict[str, datetime] = field(default_factory=dict)
    churned: dict[str, bool] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def drift(self, day: int) -> float:
        """0 on the first day, 1 on the last, growing ever faster (a price rise rolled out gradually)."""
        return (day / max(self.size.days - 1, 1)) ** 2

    def behaviour(self, day: int) -> float:
        """How far customers' reaction to the price rise has gone (0 before it, 1 after about six weeks)."""
        return min(1.0, max(0.0, (day / max(self.size.days - 1, 1) - 0.15) * 2.2))


# --- running tasks the way a worker would ------------------------------------------------------------


@contextmanager
def tasks_inline() -> Iterator[None]:
    """Celery tasks enqueued while seeding run at once in this process (the worker's code, eagerly),
    and the prediction log is written by the caller instead of a background thread."""
    from opsportal.celery import app

    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    try:
        with override_settings(SCORING_BACKGROUND_THREADS=False, PREDICTION_LOG_SAMPLE_RATE=1.0):
            yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = before


def _timed(demo: Demo, step: str, function: Callable[[Demo], Any]) -> Any:
    started = time.perf_counter()
    result = function(demo)
    demo.timings[step] = round(time.perf_counter() - started, 2)
    return result


# --- data ---------------------------------------------------------------------------------------------


def customers(rng: np.random.Generator, rows: int, drift: float = 0.0) -> pd.DataFrame:
    """Telco-like customers; `drift` (0..1) moves monthly charges up by up to PRICE_RISE."""
    return pd.DataFrame({
        "tenure": rng.integers(0, 72, rows),
        "MonthlyCharges": (rng.uniform(18, 120, rows) + PRICE_RISE * drift).round(2),
        "SeniorCitizen": (rng.random(rows) < 0.17).astype(int),
        "Contract": rng.choice(CONTRACTS, rows, p=[0.55, 0.25, 0.2]),
        "PaymentMethod": rng.choice(PAYMENTS, rows, p=[0.34, 0.23, 0.22, 0.21]),
    })


def churn_probability(frame: pd.DataFrame, behaviour: float = 0.0) -> np.ndarray:
    """The true chance to churn. As `behaviour` (0..1) grows, customers grow more price-sensitive and
    seniors churn more: what v1 never saw and a model retrained on recent labels learns."""
    logit = (-1.0 - 0.05 * frame["tenure"] + (0.025 + 0.02 * behaviour) * (frame["MonthlyCharges"] - 50)
             - 1.6 * (frame["Contract"] != "Month-to-month") + 0.9 * (frame["PaymentMethod"] == "Electronic check")
             + 2.5 * behaviour * frame["SeniorCitizen"])
    return (1 / (1 + np.exp(-logit.to_numpy(dtype=float)))).round(6)


def training_frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    frame = customers(rng, rows)
    frame[TARGET] = np.where(rng.random(rows) < churn_probability(frame), "Yes", "No")
    return frame


def churn_pipeline(frame: pd.DataFrame) -> Any:
    """The same scaler + one-hot + logistic regression the registry's tests use."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer([("num", StandardScaler(), NUMERIC),
                                  ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    model = Pipeline([("features", features), ("classifier", LogisticRegression(max_iter=1000))])
    return model.fit(frame[NUMERIC + CATEGORICAL], frame[TARGET])


def _upload(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


# --- 1. people ------------------------------------------------------------------------------------------


def people(demo: Demo) -> dict[str, User]:
    team, _ = Team.objects.get_or_create(slug=TEAM_SLUG, defaults={"name": "Customer analytics"})
    for key, (username, name, roles, in_team) in PEOPLE.items():
        first, last = name.split(" ", 1)
        user = User.objects.filter(username=username).first() or User(username=username)
        user.first_name, user.last_name, user.is_active = first, last, True
        user.is_staff = user.is_superuser = key == "admin"
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.save()
        user.groups.set(Group.objects.filter(name__in=[str(r) for r in roles]))
        if in_team:
            team.members.add(user)
        demo.users[key], demo.passwords[key] = user, password
    return demo.users


# --- 2. the model and its champion -----------------------------------------------------------------------


def champion(demo: Demo) -> Any:
    """v1: trained on last quarter's customers, validated in the sandbox, approved into production."""
    import skops.io as sio

    from registry import promotions
    from registry import services as registry_services
    from registry.models import StageTransition, VersionStatus

    dana, april = demo.users["data_scientist"], demo.users["approver"]
    model = registry_services.model_create(
        user=dana, name=MODEL_NAME, task="binary_classification", title="Customer churn", team=TEAM_SLUG,
        description="Probability that a customer cancels within the next 30 days.",
        business_objective="Target retention offers at customers likely to leave, without wasting them on loyal ones.",
        tags=["retention", "telco"])
    frame = training_frame(demo.rng, demo.size.training_rows)
    spec = registry_services.VersionUpload(
        artifact=_upload(sio.dumps(churn_pipeline(frame)), "churn-v1.skops"), format="skops",
        reference=_upload(frame.to_csv(index=False).encode(), "customers-q1.csv"), target_column=TARGET,
        description="Logistic regression on tenure, charges, contract and payment method.",
        intended_use="Weekly ranking of active customers for retention offers.",
        limitations="Trained before the price rise; not for customers in their first month.",
        training_data_description=f"{len(frame)} customers of the previous quarter with their churn outcome.",
        source_code_ref="git@example.com:analytics/churn.git#v1")
    version = registry_services.version_register(model=model, user=dana, upload=spec)  # validated inline
    version.refresh_from_db()
    if version.status != VersionStatus.READY:
        raise DemoError(f"v1 did not validate: {version.status_reason}")
    request = promotions.promotion_open(version=version, user=dana, target="production",
                                        justification="First production model for the retention programme.")
    promotions.promotion_decide(request=request, user=april, decision="approve",
                                comment="Gates pass; reviewed the model card with the team.")
    version.refresh_from_db()
    if version.stage != "production":
        raise DemoError("v1 did not reach production")
    # It went live just before the logged history starts.
    StageTransition.objects.filter(version=version).update(at=demo.start - timedelta(days=3))
    type(version).objects.filter(pk=version.pk).update(created_at=demo.start - timedelta(days=5))
    demo.model, demo.champion = model, version
    return version


# --- 3. traffic -------------------------------------------------------------------------------------------


def traffic(demo: Demo) -> int:
    """Every day's customers scored by the product's own predict service; the log keeps when."""
    from scoring import log
    from scoring import services as scoring_services
    from scoring.models import PredictionLog

    size, logged = demo.size, 0
    for day in range(size.days):
        frame = customers(demo.rng, size.per_day, demo.drift(day))
        ids = [f"C{day:03d}-{i:04d}" for i in range(size.per_day)]
        truth = churn_probability(frame, demo.behaviour(day))
        for part, rows in enumerate(np.array_split(np.arange(size.per_day), size.batches_per_day)):
            records = frame.iloc[rows].to_dict(orient="records")
            result = scoring_services.predict(model=demo.model, body={"rows": records, "ids": [ids[i] for i in rows]})
            log.flush()
            at = demo.start + timedelta(days=day, hours=7 + part * 2, minutes=int(demo.rng.integers(0, 60)))
            logged += PredictionLog.objects.filter(request_id=result["request_id"]).update(created_at=at)
            for i in rows:
                demo.truth[ids[i]], demo.scored_at[ids[i]] = float(truth[i]), at
    return logged


# --- 4. the campaign ----------------------------------------------------------------------------------------


def campaign(demo: Demo) -> Any:
    """Four weeks of the riskiest scored customers, 20% held out by the product; the offer works."""
    from feedback import outcomes
    from feedback import services as feedback_services
    from feedback.analysis import campaign_analyse
    from feedback.models import Assignment, CampaignAnalysis
    from feedback.services import CampaignSpec, KpiSpec
    from scoring.models import PredictionLog

    bruno, dana = demo.users["business_owner"], demo.users["data_scientist"]
    first, last = (demo.start + timedelta(days=d) for d in demo.size.campaign_days)
    spec = CampaignSpec(
        name="Spring retention offer", seed="spring-retention",
        description="A 10% discount for three months, emailed to the customers the model ranks as most likely "
                    "to leave. One in five of them is held out to measure what the offer changes.",
        kpis=[KpiSpec("churned_60d", label="Churned within 60 days", direction="lower", value_per_unit=420,
                      is_primary=True),
              KpiSpec("revenue_90d", label="Revenue over 90 days (€)", kind="numeric", direction="higher",
                      value_per_unit=1, missing_as_zero=True)],
        holdout_share=0.2, targeting="top_n", target_count=demo.size.campaign_top, business_owner=bruno,
        alias="champion")
    created = feedback_services.campaign_create(user=dana, model=demo.model, spec=spec)
    scored = PredictionLog.objects.filter(model=demo.model, created_at__gte=first, created_at__lt=last)
    rows = enumerate(({"entity_id": e, "score": s} for e, s in scored.values_list("entity_id", "score")), start=1)
    feedback_services.audience_from_scores(campaign=created, rows=rows, user=dana)
    treated = dict(Assignment.objects.filter(campaign=created).values_list("entity_id", "arm__is_holdout"))
    charges = dict((e, f["MonthlyCharges"]) for e, f in PredictionLog.objects.filter(
        model=demo.model, entity_id__in=list(treated)).values_list("entity_id", "features"))
    body = []
    for entity, holdout in sorted(treated.items()):
        chance = demo.truth[entity] * (1 if holdout else CAMPAIGN_EFFECT)
        left = bool(demo.rng.random() < chance)
        demo.churned[entity] = left
        when = demo.scored_at[entity] + timedelta(days=int(demo.rng.integers(5, 46)))  # all observed by today
        months = float(demo.rng.uniform(0, 2)) if left else 3.0
        revenue = round(charges[entity] * months * (1.0 if holdout else 0.9), 2)
        body += [{"entity_id": entity, "kpi": "churned_60d", "value": int(left), "observed_at": when.isoformat()},
                 {"entity_id": entity, "kpi": "revenue_90d", "value": revenue, "observed_at": when.isoformat()}]
    outcomes.outcomes_from_json(campaign=created, user=bruno, body=body)
    created.refresh_from_db()
    if not CampaignAnalysis.objects.filter(campaign=created, data_version=created.data_version).exists():
        campaign_analyse(campaign_id=created.pk)
    feedback_services.campaign_comment(
        campaign=created, user=bruno,
        body="The holdout makes this convincing: the offer clearly keeps customers. Before we sign off, "
             "can we see whether the lowest-risk deciles were worth the discount?")
    feedback_services.campaign_comment(
        campaign=created, user=dana,
        body="The per-decile chart below answers it: most of the effect sits in the top deciles. We will "
             "rerun the targeting with the retrained model once it is approved.")
    demo.campaign = created
    return created


# --- 6. labels ----------------------------------------------------------------------------------------------


def labels(demo: Demo) -> int:
    """Churn outcomes known a month after each prediction (the campaign's customers as observed). The upload
    makes the product refresh the realized performance of the monitoring runs they cover."""
    from feedback import services as feedback_services

    now = timezone.now()
    rows = []
    for entity, at in demo.scored_at.items():
        observed = at + LABEL_DELAY
        if observed > now:
            continue
        left = demo.churned[entity] if entity in demo.churned else bool(demo.rng.random() < demo.truth[entity])
        rows.append({"id": entity, "label": "Yes" if left else "No", "observed_at": observed.isoformat()})
    report = feedback_services.labels_upsert(model=demo.model, user=demo.users["data_scientist"],
                                             rows=enumerate(rows, start=1))
    if report.failed:
        raise DemoError(f"labels refused: {report.errors[:3]}")
    return report.created


# --- 5. monitoring --------------------------------------------------------------------------------------------


def monitoring(demo: Demo) -> list[Any]:
    """Weekly runs over the log with the default rules and the team's drift rule, oldest first."""
    from django_celery_beat.models import PeriodicTask

    from monitoring import services as monitoring_services
    from monitoring.models import Alert, MonitoringRun, RunStatus

    dana, size = demo.users["data_scientist"], demo.size
    hours = 24 * size.run_every_days
    schedule = monitoring_services.schedule_set(model=demo.model, user=dana, every_hours=hours, window_hours=hours)
    monitoring_services.rules_create_defaults(model=demo.model)
    monitoring_services.rule_create(model=demo.model, user=dana, metric="drift_share", comparison="gt",
                                    threshold=0.1, window_runs=2, severity="warning")
    runs = []
    for end_day in range(size.run_every_days, size.days + 1, size.run_every_days):
        end = demo.start + timedelta(days=end_day)
        before = set(Alert.objects.filter(model=demo.model).values_list("pk", flat=True))
        run = monitoring_services.run_request(model=demo.model, user=None, window_start=end - timedelta(hours=hours),
                                              window_end=end, trigger="schedule")  # executed inline
        run.refresh_from_db()
        if run.status != RunStatus.SUCCEEDED:
            raise DemoError(f"monitoring run #{run.pk} {run.status}: {run.status_reason}")
        # As if the schedule had run it then: charts and alerts keep their place in time.
        MonitoringRun.objects.filter(pk=run.pk).update(created_at=end, started_at=end,
                                                       finished_at=end + timedelta(seconds=40))
        Alert.objects.filter(model=demo.model).exclude(pk__in=before).update(opened_at=end + timedelta(seconds=40))
        runs.append(run)
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(last_run_at=runs[-1].window_end)
    return runs


# --- 7. retraining ----------------------------------------------------------------------------------------------


def retraining(demo: Demo) -> Any:
    """A weekly recipe on labelled predictions; the open drift alert triggers its first run."""
    from monitoring.models import Alert, AlertKind, AlertStatus
    from registry.models import GatesStatus, RequestStatus
    from retraining import services as retraining_services
    from retraining.models import DataSource, RunStatus

    recipe = retraining_services.RecipeInput(
        target_column=TARGET, estimator="LogisticRegression", hyperparameters={"max_iter": 1000},
        data_source=DataSource.PREDICTIONS, window_days=demo.size.days, holdout_fraction=0.2,
        trigger_on_drift=True, trigger_on_performance=True, cron="0 3 * * 1")
    retraining_services.recipe_save(model=demo.model, user=demo.users["data_scientist"], data=recipe)
    alert = (Alert.objects.filter(model=demo.model, kind=AlertKind.DRIFT).exclude(status=AlertStatus.RESOLVED)
             .order_by("opened_at").first())
    if alert is None:
        raise DemoError("no drift alert opened, so nothing triggers retraining")
    run = retraining_services.retraining_trigger_on_alert(alert_id=alert.pk)  # trains, validates, gates inline
    if run is None:
        raise DemoError("the drift alert did not start a retraining run")
    run.refresh_from_db()
    if run.status != RunStatus.SUCCEEDED or run.promotion_request is None:
        raise DemoError(f"retraining run #{run.pk} {run.status}: {run.status_reason}")
    request = run.promotion_request
    request.refresh_from_db()
    if request.status != RequestStatus.OPEN or request.gates_status != GatesStatus.PASSED:
        raise DemoError(f"v{run.produced_version.number}'s request is {request.status}, gates {request.gates_status}")
    demo.retraining_run, demo.challenger, demo.promotion = run, run.produced_version, request
    return run


# --- all of it ----------------------------------------------------------------------------------------------------

STEPS: list[tuple[str, Callable[[Demo], Any]]] = [
    ("people", people), ("champion", champion), ("traffic", traffic), ("campaign", campaign),
    ("monitoring", monitoring), ("labels", labels), ("retraining", retraining),
]


def new_demo(size: Size = FULL, seed: int = 20260301) -> Demo:
    # The history ends at midnight: nothing is logged in the future, and the last weekly run has just happened.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return Demo(size=size, start=today - timedelta(days=size.days), rng=np.random.default_rng(seed))


def seed(size: Size = FULL, *, steps: list[str] | None = None, seed: int = 20260301) -> Demo:
    """Build the story (or its first steps); raises DemoError when a step does not come out as told."""
    demo = new_demo(size, seed)
    wanted = [name for name, _ in STEPS] if steps is None else steps
    with tasks_inline():
        for name, function in STEPS:
            if name in wanted:
                _timed(demo, name, function)
    return demo


def already_seeded() -> bool:
    from registry.models import RegisteredModel

    return RegisteredModel.objects.filter(name=MODEL_NAME).exists()


@transaction.atomic
def reset_passwords() -> dict[str, str]:
    """New passwords for the demo's people (a second `--demo` start prints working credentials again)."""
    passwords = {}
    for key, (username, *_rest) in PEOPLE.items():
        user = User.objects.filter(username=username).first()
        if user is not None:
            passwords[key] = secrets.token_urlsafe(9)
            user.set_password(passwords[key])
            user.save(update_fields=["password"])
    return passwords

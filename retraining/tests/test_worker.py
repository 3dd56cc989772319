"""End to end on a real Celery worker (training queue): schedules, alerts, overlapping triggers, failures."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import wait_for
from monitoring.models import Alert, AlertKind, Severity
from monitoring.services import alert_raise
from registry import promotions, services
from registry.models import ModelVersion, PromotionRequest
from registry.tests.fixtures import csv_bytes, skops_bytes, upload
from registry.tests.test_telco import telco, telco_pipeline
from retraining import services as retraining_services
from retraining.models import RetrainingRun
from retraining.tasks import retraining_scheduled
from retraining.tests.fixtures import CARD, dataset_upload, recipe_input

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
HOLDOUT = 1409  # the last fifth of the Telco file


def finished(model, timeout=240):
    """The model's single run, once it is over."""
    return wait_for(lambda: RetrainingRun.objects.filter(model=model, status__in=["succeeded", "failed"]).first(),
                    timeout=timeout, interval=0.5)


def promote(version, data_scientist, approver):
    request = promotions.promotion_open(version=version, user=data_scientist, target="production",
                                        justification="First model.")
    promotions.promotion_gates_evaluate(request_id=request.pk)
    promotions.promotion_decide(request=request, user=approver, decision="approve")
    version.refresh_from_db()
    assert version.stage == "production", version.status_reason


@pytest.fixture
def telco_champion(churn_model, data_scientist, approver):
    """A Telco churn pipeline trained on the first 800 customers, in production."""
    frame = telco()
    spec = services.VersionUpload(artifact=upload(skops_bytes(telco_pipeline(frame.iloc[:800]))), format="skops",
                                  reference=upload(csv_bytes(frame.iloc[:800]), "telco.csv"), target_column="Churn",
                                  **CARD)
    version = services.version_register(model=churn_model, user=data_scientist, upload=spec)
    services.version_validate(version_id=version.pk)
    version.refresh_from_db()
    promote(version, data_scientist, approver)
    return version


def test_a_scheduled_run_on_the_telco_data_registers_a_challenger_and_opens_a_request(
        celery_worker_process, telco_champion, data_scientist, churn_model):
    frame: pd.DataFrame = telco()
    recipe = retraining_services.recipe_save(
        model=churn_model, user=data_scientist, dataset=upload(csv_bytes(frame), "telco_churn.csv"),
        data=recipe_input(hyperparameters={"max_iter": 1000}, split_column="", holdout_fraction=HOLDOUT / len(frame),
                          cron="0 3 * * 1"))
    retraining_scheduled.delay(recipe.pk)  # what beat sends at the tick
    run = finished(churn_model)
    assert run.status == "succeeded", (run.status_reason, run.log)
    assert (run.trigger, run.training_rows, run.holdout_rows) == ("schedule", len(frame) - HOLDOUT, HOLDOUT)
    challenger = ModelVersion.objects.get(pk=run.produced_version_id)
    assert (challenger.parent_id, challenger.status, challenger.stage) == (telco_champion.pk, "ready", "none")
    assert run.comparison["verdict"] == "better" and run.comparison["rows"] == HOLDOUT
    request = PromotionRequest.objects.get(version=challenger)
    assert (request.status, request.requester_id, run.promotion_request_id) == ("open", data_scientist.pk, request.pk)
    assert run.comparison["summary"] in request.justification
    telco_champion.refresh_from_db()
    assert telco_champion.stage == "production"


@pytest.fixture
def small_champion(register, data_scientist, approver):
    version = register(**CARD)
    services.version_validate(version_id=version.pk)
    version.refresh_from_db()
    promote(version, data_scientist, approver)
    return version


def test_a_drift_alert_triggers_a_run(celery_worker_process, small_champion, churn_model, data_scientist):
    retraining_services.recipe_save(model=churn_model, user=data_scientist, dataset=dataset_upload(),
                                    data=recipe_input(trigger_on_drift=True))
    alert_raise(model=churn_model, key="drift:dataset", kind=AlertKind.DRIFT, severity=Severity.WARNING,
                title="Drift in 3 of 5 inputs")
    run = finished(churn_model)
    assert (run.trigger, run.trigger_detail) == ("alert", "Data drift: Drift in 3 of 5 inputs")
    assert run.status == "succeeded", (run.status_reason, run.log)
    assert run.produced_version.parent_id == small_champion.pk


def test_overlapping_triggers_give_one_run(celery_worker_process, small_champion, churn_model, data_scientist):
    recipe = retraining_services.recipe_save(model=churn_model, user=data_scientist, dataset=dataset_upload(),
                                             data=recipe_input(trigger_on_drift=True, cron="*/5 * * * *"))
    for _ in range(2):  # two beat schedulers sending the same tick
        retraining_scheduled.delay(recipe.pk)
    alert_raise(model=churn_model, key="drift:tenure", kind=AlertKind.DRIFT, severity=Severity.WARNING,
                title="Drift in tenure")
    run = finished(churn_model)
    wait_for(lambda: RetrainingRun.objects.get(pk=run.pk).log.count("skipped") == 2, timeout=60)
    assert RetrainingRun.objects.filter(model=churn_model).count() == 1
    assert ModelVersion.objects.filter(model=churn_model).count() == 2


@pytest.mark.parametrize(("hyperparameters", "target", "reason"), [
    ({"solver": "lbfgs", "l1_ratio": 1.0}, "Churn",
     "Training failed: Solver lbfgs supports only 'l2' or None penalties, got l1 penalty."),
    ({"C": 0.5}, "Churned", "The target column 'Churned' is not in the training data (columns: "),
])
def test_a_failing_recipe_fails_readably_raises_an_alert_and_leaves_the_champion(
        celery_worker_process, small_champion, churn_model, data_scientist, hyperparameters, target, reason):
    recipe = retraining_services.recipe_save(model=churn_model, user=data_scientist, dataset=dataset_upload(),
                                             data=recipe_input(hyperparameters=hyperparameters))
    if target != recipe.target_column:  # renamed behind the editor's back (the editor refuses it)
        recipe.target_column = target
        recipe.save()
    retraining_scheduled.delay(recipe.pk)
    run = finished(churn_model)
    assert run.status == "failed" and run.status_reason.startswith(reason), run.status_reason
    alert = Alert.objects.get(model=churn_model, kind="retraining")
    assert (alert.status, alert.detail) == ("open", run.status_reason)
    assert list(ModelVersion.objects.filter(model=churn_model).values_list("number", "stage")) == [(1, "production")]
    assert not RetrainingRun.objects.filter(trigger="alert").exists()  # its own alert never starts a run

"""Runs executed inline, as the worker would: data, training, comparison, registration, gates, promotion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback.models import Label
from monitoring.models import Alert
from registry import promotions
from registry.models import ModelVersion, PromotionRequest
from retraining import services
from retraining.models import RetrainingRun
from retraining.tests.fixtures import training_frame
from scoring.models import PredictionLog

pytestmark = pytest.mark.django_db


def run_now(model, **kwargs):
    run = services.run_start(model=model, trigger="manual", **kwargs)
    services.run_execute(run_id=run.pk)  # what the worker runs
    run.refresh_from_db()
    return run


def allow_auto_promotion(model, admin, tolerance=0.0):
    gates = {**promotions.selectors.policy_for(model).gates, "beats_champion": {"enabled": True,
                                                                                  "tolerance": tolerance}}
    promotions.policy_update(model=model, admin=admin, changes={"auto_promote": True, "gates": gates})


def test_it_registers_a_challenger_with_lineage_and_opens_a_promotion_request(champion, make_recipe, data_scientist):
    make_recipe()
    run = run_now(champion.model, user=data_scientist)
    assert run.status == "succeeded", (run.status_reason, run.log)
    version = run.produced_version
    assert (version.parent, version.status, version.created_by) == (champion, "ready", data_scientist)
    assert version.training_data_fingerprint == run.data_fingerprint and len(run.data_fingerprint) == 64
    assert run.comparison["verdict"] == "better"
    request = PromotionRequest.objects.get(version=version)
    assert (request.requester, request.target, request.status) == (data_scientist, "production", "open")
    assert f"/retraining/runs/{run.pk}/" in request.justification
    with pytest.raises(promotions.GovernanceError) as refused:  # the recipe owner cannot approve it
        promotions.promotion_decide(request=request, user=data_scientist, decision="approve")
    assert refused.value.code == "four_eyes"
    champion.refresh_from_db()
    assert champion.stage == "production"


def test_a_worse_challenger_is_registered_but_never_promoted_automatically(champion, make_recipe, admin_user):
    allow_auto_promotion(champion.model, admin_user, tolerance=0.5)  # the gates alone would let it through
    make_recipe(training_frame(shifted=False))
    run = run_now(champion.model)
    assert run.status == "succeeded", (run.status_reason, run.log)
    assert run.comparison["verdict"] == "worse"
    assert run.produced_version.status == "ready" and run.auto_promoted is False
    assert PromotionRequest.objects.get(version=run.produced_version).status == "open"
    champion.refresh_from_db()
    assert champion.stage == "production"


def test_a_better_challenger_is_promoted_only_when_the_models_policy_switches_it_on(champion, make_recipe,
                                                                                      admin_user):
    allow_auto_promotion(champion.model, admin_user)
    make_recipe()
    run = run_now(champion.model)
    assert run.auto_promoted is True, (run.status_reason, run.log)
    assert run.produced_version.stage == "production"
    assert PromotionRequest.objects.get(version=run.produced_version).status == "approved"


def test_a_bad_hyperparameter_fails_the_run_with_the_estimators_reason_and_an_alert(champion, make_recipe):
    make_recipe(hyperparameters={"solver": "lbfgs", "l1_ratio": 1.0})  # each value is valid; together they are not
    run = run_now(champion.model)
    assert run.status == "failed"
    assert run.status_reason == "Training failed: Solver lbfgs supports only 'l2' or None penalties, got l1 penalty."
    alert = Alert.objects.get(model=champion.model, kind="retraining")
    assert alert.detail == run.status_reason and alert.status == "open"
    assert list(ModelVersion.objects.values_list("number", "stage")) == [(1, "production")]


def test_a_missing_target_column_fails_the_run_readably(champion, make_recipe):
    recipe = make_recipe()
    recipe.target_column = "Churned"  # renamed behind the editor's back (e.g. in the admin)
    recipe.save()
    run = run_now(champion.model)
    assert run.status == "failed"
    assert run.status_reason.startswith("The target column 'Churned' is not in the training data (columns: ")
    assert Alert.objects.filter(model=champion.model, kind="retraining", title=f"Retraining run #{run.pk} failed")
    assert ModelVersion.objects.count() == 1


def test_a_successful_run_resolves_the_retraining_alert(champion, make_recipe):
    make_recipe(hyperparameters={"solver": "lbfgs", "l1_ratio": 1.0})
    run_now(champion.model)
    make_recipe()
    run_now(champion.model)
    assert Alert.objects.get(model=champion.model, kind="retraining").status == "resolved"


def test_it_trains_on_logged_predictions_joined_with_their_labels(champion, make_recipe):
    frame = training_frame(400)
    now = timezone.now()
    features = ["tenure", "MonthlyCharges", "SeniorCitizen", "Contract", "PaymentMethod"]
    for i, row in enumerate(frame.to_dict("records")):
        PredictionLog.objects.create(created_at=now - timedelta(minutes=400 - i), model=champion.model,
                                     version=champion, request_id="00000000-0000-0000-0000-000000000001",
                                     entity_id=f"c{i}", features={k: row[k] for k in features}, prediction="No",
                                     latency_ms=1.0)
        Label.objects.create(model=champion.model, entity_id=f"c{i}", label=row["Churn"], observed_at=now)
    make_recipe(data_source="predictions", split_column="", window_days=7)
    run = run_now(champion.model)
    assert run.status == "succeeded", (run.status_reason, run.log)
    assert (run.training_rows, run.holdout_rows) == (300, 100)
    assert "by scored_at held out" in run.produced_version.training_data_description


def test_a_run_whose_worker_vanished_is_failed_by_the_reconciler(champion, make_recipe):
    make_recipe()
    run = services.run_start(model=champion.model, trigger="manual")
    RetrainingRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now() - timedelta(days=1))
    assert services.runs_reconcile() == 1
    run.refresh_from_db()
    assert (run.status, run.status_reason) == ("failed", services.MSG_STALE)

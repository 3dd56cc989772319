"""The recipe editor's rules: allow-listed estimators, checked hyperparameters, registered functions only."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from retraining import recipes, services
from retraining.tests.fixtures import dataset_upload, recipe_input, training_frame

pytestmark = pytest.mark.django_db


def refusal(churn_model, user, dataset=True, **changes):
    with pytest.raises(services.DomainError) as refused:
        services.recipe_save(model=churn_model, user=user, data=recipe_input(**changes),
                             dataset=dataset_upload() if dataset else None)
    return refused.value


def test_it_refuses_an_estimator_outside_the_allow_list(churn_model, data_scientist):
    error = refusal(churn_model, data_scientist, estimator="os.system")
    assert error.details == {"estimator": [recipes.MSG_ESTIMATOR.format(names=", ".join(recipes.CLASSIFIERS))]}


def test_it_refuses_a_regressor_for_a_classification_model(churn_model, data_scientist):
    assert "estimator" in refusal(churn_model, data_scientist, estimator="Ridge").details


def test_it_refuses_an_out_of_range_hyperparameter_in_scikit_learns_words(churn_model, data_scientist):
    error = refusal(churn_model, data_scientist, estimator="RandomForestClassifier",
                    hyperparameters={"n_estimators": -5})
    assert error.message == ("The 'n_estimators' parameter of RandomForestClassifier must be an int in the range "
                             "[1, inf). Got -5 instead.")


@pytest.mark.parametrize(("hyperparameters", "word"), [
    ({"Cee": 1}, "has no hyperparameter 'Cee'"),
    ({"n_jobs": 8}, "is set by OpsPortal"),
    ({"C": {"__class__": "x"}}, "must be a number, text"),
    ({"max_iter": 10**9}, "may be at most 100000"),
])
def test_it_refuses_hyperparameters_it_cannot_vouch_for(churn_model, data_scientist, hyperparameters, word):
    assert word in refusal(churn_model, data_scientist, hyperparameters=hyperparameters).message


def test_it_refuses_a_training_function_missing_from_the_settings_allow_list(churn_model, data_scientist):
    error = refusal(churn_model, data_scientist, kind="function", function_path="subprocess.run")
    assert error.details == {"function_path": [recipes.MSG_FUNCTION_NOT_ALLOWED]}


def test_it_refuses_a_dataset_without_the_target_column(churn_model, data_scientist):
    with pytest.raises(services.DomainError, match="target column 'Churn' is not in the data file"):
        services.recipe_save(model=churn_model, user=data_scientist, data=recipe_input(),
                             dataset=dataset_upload(training_frame().drop(columns=["Churn"])))


def test_it_refuses_a_recipe_on_an_uploaded_dataset_without_one(churn_model, data_scientist):
    assert refusal(churn_model, data_scientist, dataset=False).details == {"dataset": [services.MSG_DATASET_REQUIRED]}


@pytest.mark.parametrize("cron", ["0 3 * *", "61 3 * * *", "0 3 * * funday"])
def test_it_refuses_a_schedule_celery_cannot_read(churn_model, data_scientist, cron):
    assert "cron" in refusal(churn_model, data_scientist, cron=cron).details


def test_it_audits_each_change_with_before_and_after(churn_model, data_scientist, make_recipe):
    make_recipe()
    make_recipe(hyperparameters={"C": 2.0})
    event = AuditEvent.objects.filter(action="retraining.recipe_saved").order_by("id").last()
    assert event.payload["before"]["hyperparameters"] == {"C": 0.5, "max_iter": 500}
    assert event.payload["after"]["hyperparameters"] == {"C": 2.0}


def test_a_registered_function_trains_the_challenger(champion, make_recipe):
    make_recipe(kind="function", function_path="retraining.functions.balanced_logistic_regression",
                hyperparameters={"C": 1.0})
    run = services.run_start(model=champion.model, trigger="manual")
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", (run.status_reason, run.log)
    assert run.produced_version.params["recipe"] == "function retraining.functions.balanced_logistic_regression"

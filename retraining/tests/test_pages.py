"""Pages: the recipe editor with validation, run now, the run list and the run page with its chart and log."""

from __future__ import annotations

import json

import pytest

from retraining.models import RetrainingRun, TrainingRecipe
from retraining.tests.fixtures import dataset_upload

pytestmark = pytest.mark.django_db
FORM = {"kind": "builtin", "estimator": "LogisticRegression", "hyperparameters": '{"C": 0.5}',
        "data_source": "dataset", "window_days": "90", "target_column": "Churn", "split_column": "observed_on",
        "holdout_fraction": "0.2", "cron": "0 3 * * 1", "trigger_on_drift": "on", "promotion_target": "production",
        "enabled": "on"}


def login(client, user):
    client.force_login(user)
    return client


def test_it_saves_a_recipe_from_the_editor(client, data_scientist, churn_model):
    response = login(client, data_scientist).post("/retraining/models/churn/", {**FORM, "dataset": dataset_upload()})
    assert response.status_code == 302
    recipe = TrainingRecipe.objects.get(model=churn_model)
    assert (recipe.estimator, recipe.hyperparameters, recipe.cron, recipe.owner) == (
        "LogisticRegression", {"C": 0.5}, "0 3 * * 1", data_scientist)


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"hyperparameters": '{"C": -1}'}, "hyperparameters", "The &#x27;C&#x27; parameter of LogisticRegression"),
    ({"hyperparameters": "{C: 1"}, "hyperparameters", "Hyperparameters must be a JSON object"),
    ({"cron": "every day"}, "cron", "Give five crontab fields"),
])
def test_it_shows_what_is_wrong_next_to_the_field(client, data_scientist, churn_model, change, field, message):
    response = login(client, data_scientist).post("/retraining/models/churn/",
                                                  {**FORM, **change, "dataset": dataset_upload()})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not TrainingRecipe.objects.exists()


def test_an_approver_sees_the_recipe_but_cannot_change_it(client, approver, make_recipe):
    make_recipe()
    page = login(client, approver).get("/retraining/models/churn/")
    assert page.status_code == 200 and b'data-testid="recipe-summary"' in page.content
    assert client.post("/retraining/models/churn/", FORM).status_code == 403


def test_another_team_gets_404(client, other_data_scientist, make_recipe):
    make_recipe()
    assert login(client, other_data_scientist).get("/retraining/models/churn/").status_code == 404


def test_run_now_queues_a_run_and_opens_its_page(client, data_scientist, make_recipe):
    make_recipe()
    response = login(client, data_scientist).post("/retraining/models/churn/run/", {"reason": "checking"})
    run = RetrainingRun.objects.get()
    assert response.url == f"/retraining/runs/{run.pk}/"
    page = client.get(response.url).content.decode()
    assert f'hx-get="/retraining/runs/{run.pk}/live/"' in page
    assert "Waiting for a worker on the training queue" in page


def test_the_run_page_draws_the_comparison_and_escapes_the_log(client, data_scientist, make_recipe, churn_model):
    make_recipe()
    run = RetrainingRun.objects.create(
        model=churn_model, trigger="manual", status="succeeded", log="<script>alert(1)</script>\n",
        comparison={"rows": 375, "summary": "roc_auc challenger 0.84 vs champion v1 0.79: better.",
                    "champion_version": 1, "results": {"candidate": {"metrics": {"roc_auc": 0.84}},
                                                       "champion": {"metrics": {"roc_auc": 0.79}}}})
    page = login(client, data_scientist).get(f"/retraining/runs/{run.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    figure = json.loads(page.split('<script id="comparison-figure" type="application/json">')[1].split("</script>")[0])
    assert [bar["y"] for bar in figure["data"]] == [[0.84], [0.79]]


def test_the_live_partial_asks_htmx_to_reload_once_the_run_is_over(client, data_scientist, churn_model, make_recipe):
    make_recipe()
    run = RetrainingRun.objects.create(model=churn_model, trigger="manual", status="failed", status_reason="No.")
    response = login(client, data_scientist).get(f"/retraining/runs/{run.pk}/live/", HTTP_HX_REQUEST="true")
    assert response["HX-Refresh"] == "true"


def test_the_run_list_says_what_to_do_when_empty_and_the_menu_links_it(client, data_scientist):
    page = login(client, data_scientist).get("/retraining/").content.decode()
    assert "No retraining runs yet" in page and 'href="/retraining/"' in page

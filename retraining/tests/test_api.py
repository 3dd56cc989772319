"""REST: start a run now and read it; visibility and permissions as the registry's."""

from __future__ import annotations

import pytest

from retraining.models import RetrainingRun

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/models/churn/retraining/runs/"


def test_it_queues_a_run_and_reads_it_back(api_client_for, data_scientist, make_recipe):
    make_recipe()
    client = api_client_for(data_scientist)
    response = client.post(RUNS, {"reason": "new quarter"}, format="json")
    assert response.status_code == 202, response.json()
    body = client.get(f"/api/v1/retraining/runs/{response.json()['id']}/").json()
    assert (body["status"], body["trigger"], body["trigger_detail"], body["requested_by"]) == (
        "queued", "api", "new quarter", "dana")
    assert client.get(RUNS).json()["count"] == 1


def test_a_second_start_while_one_runs_is_a_409_naming_it(api_client_for, data_scientist, make_recipe):
    make_recipe()
    client = api_client_for(data_scientist)
    first = client.post(RUNS, {}, format="json").json()["id"]
    response = client.post(RUNS, {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_in_progress"
    assert response.json()["error"]["details"] == {"run": first}
    assert RetrainingRun.objects.count() == 1


def test_a_model_without_a_recipe_says_what_to_do(api_client_for, data_scientist, churn_model):
    response = api_client_for(data_scientist).post(RUNS, {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["message"].startswith("This model has no training recipe yet")


def test_another_teams_data_scientist_gets_404_for_the_model_and_the_run(api_client_for, other_data_scientist,
                                                                         data_scientist, make_recipe):
    make_recipe()
    run = api_client_for(data_scientist).post(RUNS, {}, format="json").json()["id"]
    client = api_client_for(other_data_scientist)
    assert client.post(RUNS, {}, format="json").status_code == 404
    assert client.get(f"/api/v1/retraining/runs/{run}/").status_code == 404


@pytest.mark.parametrize("persona", ["approver", "business_owner"], indirect=True)
def test_readers_outside_the_team_can_read_but_not_start(api_client_for, persona, make_recipe):
    make_recipe()
    client = api_client_for(persona)
    assert client.get(RUNS).status_code == 200
    assert client.post(RUNS, {}, format="json").status_code == 403


def test_anonymous_calls_are_refused(api_client_for, make_recipe):
    make_recipe()
    assert api_client_for(None).post(RUNS, {}, format="json").status_code in (401, 403)

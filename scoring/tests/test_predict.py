"""Real-time scoring of the churn pipeline: same numbers as the model, every bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from registry import promotions
from registry.models import ApprovalPolicy
from registry.tests.fixtures import CATEGORICAL, NUMERIC, churn_frame, churn_pipeline
from scoring import cache, explain, log

pytestmark = pytest.mark.django_db
ROWS = churn_frame(rows=5, seed=99)[NUMERIC + CATEGORICAL]


@pytest.fixture(autouse=True)
def _empty_cache():
    explain.clear()
    log.discard()


def predict(client, url="/api/v1/models/churn/predict", **body):
    return client.post(url, body or {"rows": ROWS.to_dict("records")}, format="json")


def promote(version, requester, approver):
    request = promotions.promotion_open(version=version, user=requester, target="production", justification="ok")
    promotions.promotion_gates_evaluate(request_id=request.pk)
    return promotions.promotion_decide(request=request, user=approver, decision="approve")


@pytest.fixture
def client(api_client_for, data_scientist):
    return api_client_for(data_scientist)


def test_it_returns_the_models_own_probabilities(ready_version, client):
    response = predict(client, "/api/v1/models/churn/versions/1/predict")
    assert response.status_code == 200, response.json()
    body = response.json()
    expected = churn_pipeline().predict_proba(ROWS)[:, 1]
    got = np.array([p["Yes"] for p in body["probabilities"]])
    assert np.allclose(got, expected, atol=1e-5)
    assert body["predictions"] == churn_pipeline().predict(ROWS).tolist()
    assert (body["version"], body["engine"]) == (1, "onnx")


def test_it_accepts_mlflow_bodies(ready_version, client):
    url = "/api/v1/models/churn/versions/1/predict"
    ours = predict(client, url).json()["predictions"]
    split = {"columns": list(ROWS.columns), "data": ROWS.to_numpy().tolist()}
    assert predict(client, url, dataframe_split=split).json()["predictions"] == ours
    assert predict(client, url, dataframe_records=ROWS.to_dict("records")).json()["predictions"] == ours


def test_it_names_every_input_problem(ready_version, client):
    rows = ROWS.to_dict("records")
    del rows[0]["tenure"]
    rows[1]["tenure"] = "ten"
    rows[2]["MonthlyCharges"] = None
    rows[3]["favourite_colour"] = "blue"
    rows[4]["tenure"] = 3.5
    response = predict(client, "/api/v1/models/churn/versions/1/predict", rows=rows)
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert details["unknown_columns"] == ["favourite_colour"]
    problems = {(p["row"], p["column"]): p["problem"] for p in details["values"]}
    assert problems[(0, "tenure")] == "is missing from this row"
    assert problems[(1, "tenure")] == "expected a number, got 'ten'"
    assert problems[(2, "MonthlyCharges")] == "is null, and this column never is"
    assert problems[(4, "tenure")] == "expected a whole number, got 3.5"


@pytest.mark.parametrize("body", [{}, {"rows": []}, {"rows": [1, 2]}, {"rows": [{}], "ids": [1, 2]}])
def test_it_refuses_malformed_bodies(ready_version, client, body):
    response = client.post("/api/v1/models/churn/versions/1/predict", body, format="json")
    assert response.status_code == 400


def test_it_counts_unseen_categories(ready_version, client):
    rows = ROWS.to_dict("records")
    rows[0]["Contract"] = "Ten year"
    body = predict(client, "/api/v1/models/churn/versions/1/predict", rows=rows, ids=list("abcde")).json()
    assert body["unseen_categories"] == {"Contract": 1}
    assert body["ids"] == list("abcde")


def test_it_answers_409_without_a_champion(ready_version, client):
    response = predict(client)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_champion"


def test_it_hides_other_teams_models(ready_version, api_client_for, other_data_scientist):
    assert predict(api_client_for(other_data_scientist)).status_code == 404


def test_a_promotion_shows_on_the_next_prediction_without_a_restart(ready_version, register, validate, client,
                                                                   data_scientist, approver):
    ApprovalPolicy.objects.filter(model=None).update(gates={})
    promote(ready_version, data_scientist, approver)
    assert predict(client).json()["version"] == 1
    second = validate(register(churn_pipeline(churn_frame(seed=3))))
    promote(second, data_scientist, approver)
    assert predict(client).json()["version"] == 2
    assert set(cache.cached_versions()) == {ready_version.pk, second.pk}


def test_it_logs_every_scored_row_off_the_response_path(ready_version, client):
    from scoring.models import PredictionLog

    body = predict(client, "/api/v1/models/churn/versions/1/predict", rows=ROWS.to_dict("records"),
                   ids=["c1", "c2", "c3", "c4", "c5"]).json()
    assert not PredictionLog.objects.exists()  # queued, not yet written
    assert log.flush() == 5
    logged = PredictionLog.objects.order_by("entity_id")
    assert [r.entity_id for r in logged] == ["c1", "c2", "c3", "c4", "c5"]
    first = logged[0]
    assert str(first.request_id) == body["request_id"] and first.version == ready_version
    assert first.features == ROWS.iloc[0].to_dict() | {"tenure": int(ROWS.iloc[0]["tenure"])}
    assert first.score == pytest.approx(body["probabilities"][0]["Yes"])
    assert first.probabilities == body["probabilities"][0] and first.prediction == body["predictions"][0]
    assert abs((timezone.now() - first.created_at).total_seconds()) < 60


def test_it_samples_the_log_when_asked(ready_version, client, settings):
    settings.PREDICTION_LOG_SAMPLE_RATE = 0.0
    predict(client, "/api/v1/models/churn/versions/1/predict")
    assert log.flush() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_background_writer_stores_rows_by_itself(ready_version, client, settings, monkeypatch):
    from conftest import wait_for
    from scoring.models import PredictionLog

    settings.SCORING_BACKGROUND_THREADS = True
    monkeypatch.setattr(cache, "ensure_warmer", lambda: None)  # this test is about the log writer only
    assert predict(client, "/api/v1/models/churn/versions/1/predict").status_code == 200
    assert wait_for(lambda: PredictionLog.objects.count() == 5, timeout=10)


def test_it_explains_each_row_exactly_in_its_own_columns(ready_version, client):
    from scipy.special import logit

    body = predict(client, "/api/v1/models/churn/versions/1/predict?explain=1").json()
    first = body["explanations"][0]
    assert set(first["contributions"]) == set(NUMERIC + CATEGORICAL)
    assert first["method"].startswith("exact linear")
    total = first["base_value"] + sum(first["contributions"].values())
    assert total == pytest.approx(first["score"], abs=1e-6)
    assert first["score"] == pytest.approx(logit(body["probabilities"][0]["Yes"]), abs=1e-4)


def test_it_says_when_a_model_cannot_be_explained_exactly(register, validate, client, admin_user):
    from sklearn.ensemble import RandomForestClassifier

    from registry import services as registry_services

    frame = churn_frame()
    registry_services.trusted_type_add(admin=admin_user, name="sklearn.tree._tree.Tree", reason="reviewed")
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame[NUMERIC], frame["Churn"])
    version = validate(register(forest, reference=frame[[*NUMERIC, "Churn"]]))
    response = client.post(f"/api/v1/models/churn/versions/{version.number}/predict?explain=1",
                           {"rows": ROWS[NUMERIC].to_dict("records")}, format="json")
    assert response.status_code == 422
    assert "linear models" in response.json()["error"]["message"]


def test_a_predict_only_token_scores_but_can_do_nothing_else(ready_version, data_scientist):
    from rest_framework.test import APIClient

    from accounts.services import token_create

    _, raw = token_create(user=data_scientist, name="crm", expires_in_days=30, scope="predict")
    crm = APIClient()
    crm.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert predict(crm, "/api/v1/models/churn/versions/1/predict").status_code == 200
    for url in ("/api/v1/models/", "/api/v1/models/churn/", "/api/v1/tokens/", "/api/v1/me/"):
        response = crm.get(url)
        assert response.status_code == 403, url
        assert "prediction endpoints" in response.json()["error"]["message"]


def test_it_throttles_each_token_separately(ready_version, api_client_for, data_scientist, monkeypatch):
    from scoring.throttling import PredictRateThrottle

    monkeypatch.setattr(PredictRateThrottle, "THROTTLE_RATES", {"predict": "2/min"})
    first, second = api_client_for(data_scientist), api_client_for(data_scientist)
    url = "/api/v1/models/churn/versions/1/predict"
    assert [predict(first, url).status_code for _ in range(3)] == [200, 200, 429]
    assert predict(second, url).status_code == 200


def test_a_new_champion_is_loaded_before_its_first_request(ready_version, data_scientist, approver):
    ApprovalPolicy.objects.filter(model=None).update(gates={})
    promote(ready_version, data_scientist, approver)
    assert cache.cached_versions() == []
    assert cache.warm_champions() == [ready_version.pk]
    assert cache.cached_versions() == [ready_version.pk]

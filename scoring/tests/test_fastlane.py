"""The prediction fast lane answers exactly as the DRF view would, and hands everything unusual to it."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.settings import api_settings

from accounts.services import token_create, token_revoke
from registry.tests.fixtures import CATEGORICAL, NUMERIC, churn_frame
from scoring import fastlane, log
from scoring.throttling import PredictRateThrottle

pytestmark = pytest.mark.django_db
ROWS = churn_frame(rows=3, seed=5)[NUMERIC + CATEGORICAL].to_dict("records")
URL = "/api/v1/models/churn/versions/1/predict"
WITHOUT_LANE = [m for m in settings.MIDDLEWARE if m != "scoring.fastlane.PredictFastLaneMiddleware"]
VOLATILE = ("request_id", "latency_ms")


@pytest.fixture(autouse=True)
def _fresh() -> None:
    log.discard()


@pytest.fixture
def lane_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Which calls the lane answered itself (a spy that keeps the real behaviour)."""
    answered: list[Any] = []
    real = fastlane.fast_predict

    def spy(*args: Any) -> Any:
        response = real(*args)
        answered.append(response)
        return response

    monkeypatch.setattr(fastlane, "fast_predict", spy)
    return answered


def both(client: Any, url: str = URL, body: Any = None, **extra: Any) -> tuple[Any, Any]:
    body = {"rows": ROWS, "ids": ["a", "b", "c"]} if body is None else body
    fast = client.post(url, body, format="json", **extra)
    with override_settings(MIDDLEWARE=WITHOUT_LANE):
        slow = client.post(url, body, format="json", **extra)
    return fast, slow


def same(fast: Any, slow: Any) -> None:
    assert fast.status_code == slow.status_code
    a, b = fast.json(), slow.json()
    for key in VOLATILE:
        a.pop(key, None), b.pop(key, None)
    assert a == b


def test_it_answers_a_token_call_itself_with_the_drf_views_body(ready_version, api_client_for, data_scientist,
                                                                 lane_calls):
    fast, slow = both(api_client_for(data_scientist))
    assert lane_calls and lane_calls[0] is not None
    same(fast, slow)
    assert fast["Content-Type"] == "application/json"


@pytest.mark.parametrize(("url", "body"), [
    (URL, {"rows": [{"tenure": "ten"}]}),
    ("/api/v1/models/churn/versions/9/predict", None),
    ("/api/v1/models/nope/predict", None),
    ("/api/v1/models/churn/predict", None),
])
def test_it_gives_the_same_errors(ready_version, api_client_for, data_scientist, url, body):
    fast, slow = both(api_client_for(data_scientist), url, body)
    assert fast.status_code >= 400
    same(fast, slow)


def test_it_hides_another_teams_model_the_same_way(ready_version, api_client_for, other_data_scientist):
    fast, slow = both(api_client_for(other_data_scientist))
    assert fast.status_code == 404
    same(fast, slow)


def test_it_hands_a_revoked_token_to_drf(ready_version, data_scientist, api_client_for, lane_calls):
    token, raw = token_create(user=data_scientist, name="gone", expires_in_days=None)
    token_revoke(token=token, actor=data_scientist)
    client = api_client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post(URL, {"rows": ROWS}, format="json")
    assert lane_calls == [None]
    assert response.status_code == 401


@pytest.mark.parametrize("query", ["?explain=1", "?alias=nonsense", "?other=1"])
def test_it_hands_unusual_queries_to_drf(ready_version, api_client_for, data_scientist, lane_calls, query):
    response = api_client_for(data_scientist).post(URL + query, {"rows": ROWS}, format="json")
    assert lane_calls == [None]
    assert response.status_code in (200, 400)


def test_it_hands_session_callers_and_non_json_bodies_to_drf(ready_version, client, data_scientist, lane_calls):
    client.force_login(data_scientist)
    response = client.post(URL, {"rows": "x"})
    assert lane_calls == [None]
    assert response.status_code in (400, 403, 415)


def test_it_honours_the_prediction_throttle(ready_version, api_client_for, data_scientist):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "predict": "2/min"}
    try:
        with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
            api_settings.reload()
            PredictRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
            client = api_client_for(data_scientist)
            codes = [client.post(URL, {"rows": ROWS}, format="json").status_code for _ in range(3)]
    finally:  # after the override is gone: later tests get the suite's own rates back
        api_settings.reload()
        PredictRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    assert PredictRateThrottle.THROTTLE_RATES["predict"] != "2/min"
    assert codes == [200, 200, 429]

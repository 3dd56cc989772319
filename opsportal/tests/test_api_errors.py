from __future__ import annotations

import json

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from opsportal import api
from opsportal.views import server_error

pytestmark = pytest.mark.django_db


def error_of(response) -> dict:
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)["error"]


def test_it_answers_malformed_json_with_400(data_scientist, api_client_for):
    response = api_client_for(data_scientist).post("/api/v1/tokens/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_request"


def test_it_answers_an_unknown_api_route_with_json_404(data_scientist, api_client_for):
    response = api_client_for(data_scientist).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": api.MSG_NOT_FOUND, "details": {}}


def test_it_answers_an_unknown_page_with_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content


def test_it_answers_anonymous_api_calls_with_401(db):
    response = APIClient().get("/api/v1/me/")
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert "WWW-Authenticate" in response


def test_it_refuses_a_body_over_the_limit_with_413_before_reading_it(data_scientist, api_client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = '{"name": "' + "x" * 2000 + '"}'
    response = api_client_for(data_scientist).post("/api/v1/tokens/", body, content_type="application/json")
    assert response.status_code == 413
    assert error_of(response)["details"]["limit_bytes"] == 1024


def test_it_refuses_too_many_form_fields_with_400(data_scientist, api_client_for, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{i}=1" for i in range(50))
    response = api_client_for(data_scientist).post(
        "/api/v1/tokens/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "too_many_fields"


def test_it_refuses_a_wrong_method_with_405(data_scientist, api_client_for):
    response = api_client_for(data_scientist).put("/api/v1/me/", {}, format="json")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_it_answers_an_api_server_error_with_json():
    response = server_error(RequestFactory().get("/api/v1/models/"))
    assert response.status_code == 500
    assert error_of(response)["code"] == "server_error"


def test_it_serves_the_openapi_schema_and_docs_without_a_cdn(data_scientist, client):
    client.force_login(data_scientist)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/auth/token/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn." not in docs.content and b"unpkg" not in docs.content
    assert b"/static/drf_spectacular_sidecar/" in docs.content


def test_it_paginates_lists(data_scientist, api_client_for):
    from accounts.services import token_create

    for i in range(3):
        token_create(user=data_scientist, name=f"t{i}", expires_in_days=None)
    body = api_client_for(data_scientist).get("/api/v1/tokens/?page_size=2").json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]


def test_it_throttles_token_requests_with_429_and_retry_after(data_scientist, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "2/min"})
    client = APIClient()
    for _ in range(2):
        client.post("/api/v1/auth/token/", {"username": "dana", "password": "x"}, format="json")
    response = client.post("/api/v1/auth/token/", {"username": "dana", "password": "x"}, format="json")
    assert response.status_code == 429
    assert error_of(response)["code"] == "throttled"
    assert int(response["Retry-After"]) > 0

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import authentication
from accounts.api import MSG_BAD_CREDENTIALS
from accounts.models import ApiToken, AuditEvent
from accounts.services import token_create, token_digest
from accounts.views import MSG_LOCKED_OUT
from conftest import PASSWORD

pytestmark = pytest.mark.django_db
ME = "/api/v1/me/"


def issue(client: APIClient, username: str, password: str = PASSWORD, **extra: object):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password, **extra}, format="json")


def test_it_issues_a_token_for_good_credentials(data_scientist):
    response = issue(APIClient(), "dana", name="notebook", expires_in_days=7)
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("opk_") and body["name"] == "notebook"
    assert timedelta(days=6) < timezone.datetime.fromisoformat(body["expires_at"]) - timezone.now() <= timedelta(days=7)


def test_it_stores_only_the_digest_of_a_token(data_scientist):
    raw = issue(APIClient(), "dana").json()["token"]
    token = ApiToken.objects.get()
    assert token.digest == token_digest(raw)
    stored = [str(v) for v in ApiToken.objects.values().get().values()]
    assert not any(raw in value for value in stored)


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer"])
def test_it_authenticates_with_token_or_bearer_keyword(data_scientist, keyword):
    _, raw = token_create(user=data_scientist, name="t", expires_in_days=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
    response = client.get(ME)
    assert response.status_code == 200
    assert response.json()["username"] == "dana"
    assert response.json()["roles"] == ["data_scientist"]


def test_it_refuses_wrong_credentials_with_a_json_401(data_scientist):
    response = issue(APIClient(), "dana", "wrong-password")
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "authentication_failed", "message": MSG_BAD_CREDENTIALS, "details": {}}
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, authentication.MSG_TOKEN_EXPIRED),
        ({"revoked_at": timezone.now()}, authentication.MSG_TOKEN_REVOKED),
    ],
)
def test_it_rejects_expired_and_revoked_tokens(data_scientist, state, message):
    token, raw = token_create(user=data_scientist, name="t", expires_in_days=30)
    ApiToken.objects.filter(pk=token.pk).update(**state)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == message
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.parametrize("header", ["Token opk_not-a-real-token", "Bearer", "Token a b", "Token \xff"])
def test_it_rejects_unknown_or_malformed_tokens(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_it_rejects_tokens_of_disabled_accounts(data_scientist):
    _, raw = token_create(user=data_scientist, name="t", expires_in_days=None)
    data_scientist.is_active = False
    data_scientist.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert client.get(ME).json()["error"]["message"] == authentication.MSG_USER_INACTIVE


def test_it_revokes_a_token_through_the_api_and_audits_it(data_scientist, api_client_for):
    client = api_client_for(data_scientist)
    token, raw = token_create(user=data_scientist, name="ci", expires_in_days=None)
    assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoked", target_id=str(token.pk)).count() == 1
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert revoked.get(ME).status_code == 401


def test_it_hides_other_peoples_tokens(data_scientist, approver, api_client_for):
    theirs, _ = token_create(user=approver, name="theirs", expires_in_days=None)
    client = api_client_for(data_scientist)
    assert client.delete(f"/api/v1/tokens/{theirs.pk}/").status_code == 404
    names = [t["name"] for t in client.get("/api/v1/tokens/").json()["results"]]
    assert "theirs" not in names


def test_it_validates_token_settings_per_field(data_scientist, api_client_for):
    response = api_client_for(data_scientist).post("/api/v1/tokens/", {"expires_in_days": -3}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "expires_in_days" in error["details"]


def test_it_locks_an_account_after_repeated_wrong_passwords(data_scientist, settings):
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert issue(client, "dana", "wrong-password").status_code == 401
    assert issue(client, "dana", "wrong-password").status_code == 429
    locked = issue(client, "dana")  # even the right password is refused while locked
    assert locked.status_code == 429
    assert locked.json()["error"] == {"code": "locked_out", "message": MSG_LOCKED_OUT, "details": {}}
    assert not ApiToken.objects.exists()


def test_it_shows_people_a_locked_out_page(client, data_scientist, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post("/accounts/login/", {"username": "dana", "password": "wrong-password"})
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content


def test_it_shows_a_new_token_once_in_the_page(client, data_scientist):
    client.force_login(data_scientist)
    created = client.post("/accounts/tokens/", {"name": "laptop", "expires_in_days": "30"})
    assert created.status_code == 201
    raw = created.context["created"]["secret"]
    assert raw.encode() in created.content
    listing = client.get("/accounts/tokens/")
    assert raw.encode() not in listing.content
    assert b"laptop" in listing.content


def test_it_revokes_a_token_from_the_page(client, data_scientist):
    token, _ = token_create(user=data_scientist, name="old", expires_in_days=None)
    client.force_login(data_scientist)
    client.post(f"/accounts/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None

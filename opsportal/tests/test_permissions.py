"""Each persona sees and can do only what its role allows, on pages and in the API."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

EVERYONE = {"data_scientist", "business_owner", "approver", "outsider", "admin_user"}
APPROVERS = {"approver", "admin_user"}
ADMINS = {"admin_user"}

PAGES = [
    ("/", EVERYONE),
    ("/accounts/tokens/", EVERYONE),
    ("/accounts/audit/", APPROVERS),
    ("/system/", ADMINS),
]
API = [
    ("/api/v1/me/", EVERYONE),
    ("/api/v1/tokens/", EVERYONE),
    ("/api/v1/audit/events/", APPROVERS),
]
PERSONAS = sorted(EVERYONE)


@pytest.mark.parametrize("persona", PERSONAS, indirect=True)
@pytest.mark.parametrize(("url", "allowed"), PAGES)
def test_it_lets_each_persona_open_only_its_pages(client, persona, url, allowed):
    client.force_login(persona)
    response = client.get(url)
    assert response.status_code == (200 if persona.username in _usernames(allowed) else 403)


@pytest.mark.parametrize("persona", PERSONAS, indirect=True)
@pytest.mark.parametrize(("url", "allowed"), API)
def test_it_lets_each_persona_call_only_its_endpoints(api_client_for, persona, url, allowed):
    response = api_client_for(persona).get(url)
    assert response.status_code == (200 if persona.username in _usernames(allowed) else 403)


@pytest.mark.parametrize(("url", "allowed"), PAGES)
def test_it_sends_anonymous_visitors_to_sign_in(client, url, allowed):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(("url", "allowed"), API)
def test_it_answers_anonymous_api_calls_with_401(api_client_for, url, allowed):
    assert api_client_for(None).get(url).status_code == 401


@pytest.mark.parametrize("persona", sorted(EVERYONE - ADMINS), indirect=True)
def test_it_keeps_non_admins_out_of_the_admin_and_worker_checks(client, persona):
    client.force_login(persona)
    assert client.get("/admin/").status_code == 302  # to the admin's own sign-in
    assert client.post("/system/ping/").status_code == 403


@pytest.mark.parametrize(
    ("persona", "visible", "hidden"),
    [
        ("data_scientist", ["next-data-scientist"], ["next-approver", "next-admin", "no-role"]),
        ("business_owner", ["next-business-owner"], ["next-data-scientist", "next-approver", "next-admin"]),
        ("approver", ["next-approver", "Audit trail"], ["next-data-scientist", "next-admin", "System"]),
        ("outsider", ["no-role"], ["next-data-scientist", "next-approver", "Audit trail"]),
        ("admin_user", ["next-admin", "System", "Audit trail"], ["no-role"]),
    ],
    indirect=["persona"],
)
def test_it_shows_each_persona_its_next_steps_and_menu(client, persona, visible, hidden):
    client.force_login(persona)
    page = client.get("/").content.decode()
    assert all(marker in page for marker in visible)
    assert not any(marker in page for marker in hidden)


def test_it_refuses_a_session_post_without_csrf_token(data_scientist):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(data_scientist)
    assert client.post("/api/v1/tokens/", {"name": "x"}, content_type="application/json").status_code == 403
    assert client.post("/accounts/tokens/", {"name": "x", "expires_in_days": "30"}).status_code == 403


_NAMES = {
    "data_scientist": "dana",
    "business_owner": "bo",
    "approver": "april",
    "outsider": "otto",
    "admin_user": "root",
}


def _usernames(personas: set[str]) -> set[str]:
    return {_NAMES[p] for p in personas}

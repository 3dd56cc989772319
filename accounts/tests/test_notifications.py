from __future__ import annotations

import logging
from smtplib import SMTPException

import pytest
from django.core import mail
from django.db import transaction

from accounts.models import AuditEvent, Notification
from accounts.notifications import (
    MSG_IDS_OR_ALL,
    notification_emails_send,
    notification_mark_read,
    notify,
    unread_count,
    users_with_role,
)
from accounts.views_notifications import MSG_MARKED_READ
from opsportal.roles import Role

pytestmark = pytest.mark.django_db
INBOX = "/accounts/inbox/"
API = "/api/v1/notifications/"


def tell(*recipients, **extra) -> None:
    fields = {"event": "promotion.opened", "title": "churn v3 → production", "body": "Please review.",
              "url": "/models/churn/", **extra}
    notify(recipients=recipients, **fields)


@pytest.fixture
def with_email(data_scientist, approver):
    for user in (data_scientist, approver):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])


def test_it_creates_one_inbox_row_per_recipient_once(data_scientist, approver):
    tell(data_scientist, approver, data_scientist)
    assert sorted(Notification.objects.values_list("user__username", flat=True)) == ["april", "dana"]


def test_it_skips_inactive_recipients(data_scientist, approver):
    approver.is_active = False
    tell(data_scientist, approver)
    assert list(Notification.objects.values_list("user__username", flat=True)) == ["dana"]


def emails_sent_by_worker() -> int:
    """What the email task does with the notifications queued for it."""
    return notification_emails_send(notification_ids=list(Notification.objects.values_list("pk", flat=True)))


def test_it_emails_each_recipient_from_a_worker_after_commit(
    with_email, data_scientist, approver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        tell(data_scientist, approver)
    assert len(queued) == 1 and mail.outbox == []  # the request only enqueues
    assert emails_sent_by_worker() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["april@example.com", "dana@example.com"]
    assert mail.outbox[0].subject == "[OpsPortal] churn v3 → production"
    assert "Please review." in mail.outbox[0].body
    assert "http://127.0.0.1:8000/models/churn/" in mail.outbox[0].body


def test_it_sends_no_email_before_commit(with_email, data_scientist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tell(data_scientist)
    assert mail.outbox == [] and len(callbacks) == 1


def test_it_sends_nothing_when_the_transaction_rolls_back(
    with_email, data_scientist, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks(execute=True)
    with capture as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        tell(data_scientist)
        raise RuntimeError("the change failed")
    assert callbacks == [] and mail.outbox == []
    assert not Notification.objects.exists()


def test_it_skips_email_for_users_without_an_address(data_scientist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        tell(data_scientist)
    assert queued == [] and Notification.objects.count() == 1
    assert emails_sent_by_worker() == 0


def test_it_sends_no_email_when_asked_not_to(with_email, data_scientist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        tell(data_scientist, email=False)
    assert queued == []


def test_it_never_breaks_the_caller_when_email_fails(
    with_email, data_scientist, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    def refuse(self, messages):
        raise SMTPException("relay down")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    tell(data_scientist)
    with caplog.at_level(logging.ERROR):
        assert emails_sent_by_worker() == 0
    assert Notification.objects.count() == 1
    assert "Could not send 1 notification email(s) for promotion.opened" in caplog.text


def test_it_refuses_an_unknown_event(data_scientist):
    with pytest.raises(ValueError, match=r"promotion\.openned"):
        tell(data_scientist, event="promotion.openned")


@pytest.mark.parametrize("url", ["https://evil.example/", "//evil.example/", "models/x"])
def test_it_refuses_links_outside_the_portal(data_scientist, url):
    with pytest.raises(ValueError, match="relative"):
        tell(data_scientist, url=url)


def test_it_finds_users_by_role_without_admins(data_scientist, approver, admin_user):
    assert list(users_with_role(Role.APPROVER)) == [approver]


def test_it_finds_users_by_role_with_admins_when_asked(data_scientist, approver, admin_user):
    assert set(users_with_role(Role.APPROVER, include_admins=True)) == {approver, admin_user}


def test_it_counts_unread_notifications(data_scientist):
    tell(data_scientist)
    tell(data_scientist)
    notification_mark_read(user=data_scientist, ids=[Notification.objects.first().pk])
    assert unread_count(data_scientist) == 1


def test_it_marks_only_the_owners_notifications_read(data_scientist, approver):
    tell(data_scientist, approver)
    others = Notification.objects.get(user=approver)
    assert notification_mark_read(user=data_scientist, ids=[others.pk]) == 0
    assert unread_count(approver) == 1


def test_it_audits_marking_read(data_scientist):
    tell(data_scientist)
    notification_mark_read(user=data_scientist, mark_all=True)
    event = AuditEvent.objects.get(action="notification.read")
    assert event.actor == data_scientist and event.payload == {"count": 1, "all": True}


# --- inbox page --------------------------------------------------------------------------


def test_it_lists_the_inbox_with_unread_in_bold(client, data_scientist):
    tell(data_scientist, title="Unread one")
    tell(data_scientist, title="Read one")
    notification_mark_read(user=data_scientist, ids=[Notification.objects.get(title="Read one").pk])
    client.force_login(data_scientist)
    html = client.get(INBOX).content.decode()
    assert '<div class="fw-bold">' in html.split("Unread one")[0].rsplit("<li", 1)[1]
    assert "fw-bold" not in html.split("Read one")[0].rsplit("<li", 1)[1]
    assert 'href="/models/churn/"' in html


def test_it_shows_an_empty_inbox(client, outsider):
    client.force_login(outsider)
    assert "No notifications yet" in client.get(INBOX).content.decode()


def test_it_escapes_html_in_notifications(client, data_scientist):
    tell(data_scientist, title="<script>alert(1)</script>")
    client.force_login(data_scientist)
    html = client.get(INBOX).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_it_marks_all_read_from_the_inbox(client, data_scientist):
    tell(data_scientist)
    tell(data_scientist)
    client.force_login(data_scientist)
    response = client.post("/accounts/inbox/read/", {"all": "1"}, follow=True)
    assert MSG_MARKED_READ.format(count=2) in response.content.decode()
    assert unread_count(data_scientist) == 0


def test_it_marks_one_read_from_the_inbox(client, data_scientist):
    tell(data_scientist)
    tell(data_scientist)
    client.force_login(data_scientist)
    client.post("/accounts/inbox/read/", {"id": str(Notification.objects.first().pk)})
    assert unread_count(data_scientist) == 1


def test_it_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(INBOX)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- API ------------------------------------------------------------------------------------


def test_it_lists_only_your_notifications_via_the_api(api_client_for, data_scientist, approver):
    tell(data_scientist, title="For dana")
    tell(approver, title="For april")
    body = api_client_for(data_scientist).get(API).json()
    assert [n["title"] for n in body["results"]] == ["For dana"]


def test_it_filters_unread_via_the_api(api_client_for, data_scientist):
    tell(data_scientist, title="old")
    notification_mark_read(user=data_scientist, mark_all=True)
    tell(data_scientist, title="new")
    body = api_client_for(data_scientist).get(API, {"unread": "1"}).json()
    assert body["count"] == 1 and body["results"][0]["title"] == "new"


def test_it_marks_read_by_ids_via_the_api(api_client_for, data_scientist):
    tell(data_scientist)
    tell(data_scientist)
    first = Notification.objects.first()
    response = api_client_for(data_scientist).post(f"{API}read/", {"ids": [first.pk]}, format="json")
    assert response.status_code == 200 and response.json() == {"marked_read": 1, "unread": 1}


def test_it_marks_all_read_via_the_api(api_client_for, data_scientist):
    tell(data_scientist)
    tell(data_scientist)
    response = api_client_for(data_scientist).post(f"{API}read/", {"all": True}, format="json")
    assert response.json() == {"marked_read": 2, "unread": 0}


@pytest.mark.parametrize("payload", [{}, {"ids": [1], "all": True}, {"all": False}])
def test_it_wants_either_ids_or_all(api_client_for, data_scientist, payload):
    response = api_client_for(data_scientist).post(f"{API}read/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["non_field_errors"] == [MSG_IDS_OR_ALL]


def test_it_refuses_an_id_beyond_any_key_via_the_api(api_client_for, data_scientist):
    response = api_client_for(data_scientist).post(f"{API}read/", {"ids": [10**30]}, format="json")
    assert response.status_code == 400 and "ids" in response.json()["error"]["details"]


def test_it_marks_nothing_for_an_id_beyond_any_key_from_the_inbox(client, data_scientist):
    tell(data_scientist)
    client.force_login(data_scientist)
    response = client.post("/accounts/inbox/read/", {"id": str(10**30)})
    assert response.status_code == 302 and unread_count(data_scientist) == 1


def test_it_refuses_anonymous_api_calls(client):
    assert client.get(API).status_code in (401, 403)

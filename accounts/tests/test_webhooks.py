from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import notifications
from accounts.models import AuditEvent, Webhook, WebhookDelivery
from accounts.notifications import (
    HEADER_DELIVERY,
    HEADER_EVENT,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MSG_BAD_URL,
    WebhookTransientError,
    notify,
    verify_webhook_signature,
    webhook_create,
    webhook_deliver,
    webhook_signature,
)
from accounts.tasks import deliver_webhook_task
from conftest import wait_for

pytestmark = pytest.mark.django_db
API = "/api/v1/webhooks/"
PAGE = "/accounts/webhooks/"
Status = WebhookDelivery.Status


# --- a real local HTTP receiver ---------------------------------------------------------


class Receiver:
    """Answers POSTs with scripted status codes (the last one repeats) and checks each signature."""

    def __init__(self) -> None:
        self.secret = ""
        self.codes: list[int] = [200]
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.record(dict(self.headers), body)
                time.sleep(receiver.delay)
                code = receiver.codes.pop(0) if len(receiver.codes) > 1 else receiver.codes[0]
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", receiver.url + "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def record(self, headers: dict[str, str], body: bytes) -> None:
        valid = verify_webhook_signature(
            self.secret, headers.get(HEADER_TIMESTAMP, ""), body, headers.get(HEADER_SIGNATURE, "")
        )
        self.requests.append({"headers": headers, "json": json.loads(body), "valid": valid})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    thread = threading.Thread(target=rec.server.serve_forever, daemon=True)
    thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def hook(receiver: Receiver, admin_user) -> Webhook:
    webhook, secret = webhook_create(admin=admin_user, name="receiver", url=receiver.url, events=[])
    receiver.secret = secret
    return webhook


def send_event(**extra: Any) -> WebhookDelivery:
    """notify() inside the test transaction: the delivery row exists, nothing is enqueued."""
    notify(event="alert.opened", title="Drift on churn", body="PSI 0.3", url="/monitoring/1/", **extra)
    return WebhookDelivery.objects.latest("id")


def attempt(delivery: WebhookDelivery) -> WebhookDelivery:
    with contextlib.suppress(WebhookTransientError):
        webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- management: admins only, secret shown once --------------------------------------------


@pytest.mark.parametrize("persona", ["data_scientist", "approver", "business_owner", "outsider"], indirect=True)
@pytest.mark.parametrize(("method", "url"), [
    ("get", API), ("post", API), ("delete", f"{API}1/"), ("get", f"{API}1/deliveries/"),
])
def test_it_lets_only_admins_use_the_webhook_api(api_client_for, persona, method, url):
    response = getattr(api_client_for(persona), method)(url, {"name": "x", "url": "https://example.com"})
    assert response.status_code == 403
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("persona", ["data_scientist", "approver", "business_owner", "outsider"], indirect=True)
@pytest.mark.parametrize(("method", "url"), [("get", PAGE), ("post", PAGE), ("post", f"{PAGE}1/delete/"),
                                             ("get", f"{PAGE}1/deliveries/")])
def test_it_lets_only_admins_see_the_webhook_pages(client, persona, method, url):
    client.force_login(persona)
    assert getattr(client, method)(url, {"name": "x", "url": "https://example.com"}).status_code == 403


def test_it_shows_the_secret_once_via_the_api(api_client_for, admin_user):
    client = api_client_for(admin_user)
    created = client.post(API, {"name": "CMDB", "url": "https://cmdb.example/hook", "events": ["alert.opened"]})
    assert created.status_code == 201 and created.json()["secret"] == Webhook.objects.get().secret
    listed = client.get(API).json()["results"]
    assert listed[0]["name"] == "CMDB" and "secret" not in listed[0]
    assert "secret" not in client.get(f"{API}{listed[0]['id']}/").json()


def test_it_shows_the_secret_once_on_the_page(client, admin_user):
    client.force_login(admin_user)
    response = client.post(PAGE, {"name": "Slack relay", "url": "https://relay.example/in"})
    secret = Webhook.objects.get().secret
    assert response.status_code == 201 and secret in response.content.decode()
    assert secret not in client.get(PAGE).content.decode()


@pytest.mark.parametrize("url", ["ftp://files.example/x", "javascript:alert(1)", "file:///etc/passwd", "not a url"])
def test_it_refuses_non_http_webhook_urls(api_client_for, admin_user, url):
    response = api_client_for(admin_user).post(API, {"name": "bad", "url": url})
    assert response.status_code == 400 and response.json()["error"]["details"]["url"] == [MSG_BAD_URL]
    assert not Webhook.objects.exists()


def test_it_refuses_unknown_events(api_client_for, admin_user):
    response = api_client_for(admin_user).post(API, {"name": "x", "url": "https://e.example", "events": ["nope"]})
    assert response.status_code == 400 and "events" in response.json()["error"]["details"]


def test_it_never_stores_a_non_http_url_even_bypassing_the_service(admin_user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Webhook.objects.create(name="x", url="ftp://files.example/", secret="s")


def test_it_audits_creation_without_the_secret(api_client_for, admin_user):
    secret = api_client_for(admin_user).post(API, {"name": "CMDB", "url": "https://cmdb.example"}).json()["secret"]
    event = AuditEvent.objects.get(action="webhook.created")
    assert event.actor == admin_user and event.payload["url"] == "https://cmdb.example"
    assert secret not in json.dumps(event.payload)


def test_it_deletes_a_webhook_via_the_api_and_audits_it(api_client_for, admin_user, hook):
    response = api_client_for(admin_user).delete(f"{API}{hook.pk}/")
    assert response.status_code == 204 and not Webhook.objects.exists()
    assert AuditEvent.objects.get(action="webhook.deleted").target_id == str(hook.pk)


def test_it_deletes_a_webhook_from_the_page(client, admin_user, hook):
    client.force_login(admin_user)
    response = client.post(f"{PAGE}{hook.pk}/delete/")
    assert response.status_code == 302 and not Webhook.objects.exists()


# --- signatures -----------------------------------------------------------------------------


BODY = b'{"event":"alert.opened","id":1}'
SECRET = "s3cret"


def signed(secret: str = SECRET, body: bytes = BODY, timestamp: int | None = None) -> tuple[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return ts, "sha256=" + webhook_signature(secret, ts, body)


def test_it_verifies_a_valid_signature():
    ts, header = signed()
    assert verify_webhook_signature(SECRET, ts, BODY, header)


def test_it_rejects_a_tampered_body():
    ts, header = signed()
    assert not verify_webhook_signature(SECRET, ts, BODY.replace(b"1", b"2"), header)


def test_it_rejects_the_wrong_secret():
    ts, header = signed(secret="other")
    assert not verify_webhook_signature(SECRET, ts, BODY, header)


def test_it_rejects_a_stale_timestamp():
    ts, header = signed(timestamp=int(time.time()) - 301)
    assert not verify_webhook_signature(SECRET, ts, BODY, header)


@pytest.mark.parametrize(("ts", "header"), [("", "sha256=00"), ("abc", "sha256=00"), (None, "md5=00")])
def test_it_rejects_malformed_signature_headers(ts, header):
    assert not verify_webhook_signature(SECRET, ts or str(int(time.time())), BODY, header)


# --- fan-out from notify ----------------------------------------------------------------------


def test_it_creates_deliveries_only_for_subscribed_active_webhooks(admin_user):
    everything, _ = webhook_create(admin=admin_user, name="all", url="https://a.example", events=[])
    alerts, _ = webhook_create(admin=admin_user, name="alerts", url="https://b.example", events=["alert.opened"])
    webhook_create(admin=admin_user, name="promotions", url="https://c.example", events=["promotion.opened"])
    off, _ = webhook_create(admin=admin_user, name="off", url="https://d.example", events=[])
    Webhook.objects.filter(pk=off.pk).update(is_active=False)
    send_event()
    assert set(WebhookDelivery.objects.values_list("webhook", flat=True)) == {everything.pk, alerts.pk}


def test_it_enqueues_each_delivery_after_commit(hook, monkeypatch, django_capture_on_commit_callbacks):
    enqueued: list[int] = []
    monkeypatch.setattr(deliver_webhook_task, "delay", enqueued.append)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        delivery = send_event()
    assert enqueued == []
    for callback in callbacks:
        callback()
    assert enqueued == [delivery.pk]


def test_it_enqueues_nothing_when_the_transaction_rolls_back(hook, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks(execute=True)
    with capture as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        send_event()
        raise RuntimeError("the change failed")
    assert callbacks == [] and not WebhookDelivery.objects.exists()


# --- delivery against the real receiver ---------------------------------------------------------


def test_it_delivers_a_signed_body(receiver, hook):
    delivery = attempt(send_event(payload={"model": "churn", "psi": 0.3}))
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERED, 1, 200)
    [seen] = receiver.requests
    assert seen["valid"] and seen["headers"][HEADER_EVENT] == "alert.opened"
    assert seen["json"] == {"id": delivery.pk, "event": "alert.opened",
                            "created_at": delivery.created_at.isoformat(), "data": {"model": "churn", "psi": 0.3}}


def test_it_retries_a_failing_receiver_until_it_answers(receiver, hook):
    receiver.codes = [503, 503, 200]
    delivery = send_event()
    for _ in range(3):
        delivery = attempt(delivery)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERED, 3, 200)
    assert [r["valid"] for r in receiver.requests] == [True, True, True]
    assert {r["headers"][HEADER_DELIVERY] for r in receiver.requests} == {str(delivery.pk)}


def test_it_raises_a_transient_error_with_the_backoff_delay(receiver, hook, settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    receiver.codes = [503]
    delivery = send_event()
    delays = []
    for _ in range(3):
        with pytest.raises(WebhookTransientError) as raised:
            webhook_deliver(delivery_id=delivery.pk)
        delays.append(raised.value.retry_in)
    delivery.refresh_from_db()
    assert delays == [10, 20, 40]
    assert delivery.status == Status.PENDING and delivery.next_attempt_at is not None
    assert delivery.last_error == "HTTP 503 Service Unavailable"


def test_it_caps_the_backoff(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    assert notifications.retry_delay(20) == notifications.WEBHOOK_RETRY_MAX_SECONDS


def test_it_retries_the_task_with_exponential_backoff(receiver, hook, settings, monkeypatch):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 1
    receiver.codes = [503, 429, 503, 200]
    countdowns: list[int] = []
    retry = deliver_webhook_task.retry

    def spy(*args: Any, **kwargs: Any) -> Any:
        countdowns.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(deliver_webhook_task, "retry", spy)
    delivery = send_event()
    deliver_webhook_task.apply(args=[delivery.pk])  # eager: each retry runs at once, countdown recorded
    delivery.refresh_from_db()
    assert countdowns == [1, 2, 4]
    assert (delivery.status, delivery.attempts) == (Status.DELIVERED, 4)


def test_it_fails_at_once_on_a_client_error(receiver, hook):
    receiver.codes = [400, 200]
    delivery = attempt(send_event())
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.FAILED, 1, 400)
    assert attempt(delivery).attempts == 1 and len(receiver.requests) == 1


def test_it_does_not_follow_redirects(receiver, hook):
    receiver.codes = [302]
    delivery = attempt(send_event())
    assert (delivery.status, delivery.last_status_code) == (Status.FAILED, 302)
    assert "redirects are not followed" in delivery.last_error and len(receiver.requests) == 1


def test_it_fails_after_the_maximum_attempts(receiver, hook, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.codes = [500]
    delivery = send_event()
    for _ in range(3):
        delivery = attempt(delivery)
    assert (delivery.status, delivery.attempts) == (Status.FAILED, 3)
    assert "gave up after 3 attempts" in delivery.last_error
    assert AuditEvent.objects.filter(action="webhook.delivery_failed", target_id=str(delivery.pk)).count() == 1


def test_it_retries_when_the_receiver_is_unreachable(admin_user):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook_create(admin=admin_user, name="gone", url=f"http://127.0.0.1:{port}/", events=[])
    delivery = send_event()
    with pytest.raises(WebhookTransientError):
        webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING and "ConnectionError" in delivery.last_error


def test_it_retries_after_a_timeout(receiver, hook, monkeypatch):
    monkeypatch.setattr(notifications, "WEBHOOK_TIMEOUT_SECONDS", 0.2)
    receiver.delay = 1
    delivery = send_event()
    with pytest.raises(WebhookTransientError, match="Timeout"):
        webhook_deliver(delivery_id=delivery.pk)


def test_it_leaves_a_finished_delivery_alone(receiver, hook):
    delivery = attempt(send_event())
    webhook_deliver(delivery_id=delivery.pk)
    assert len(receiver.requests) == 1


def test_it_ignores_a_deleted_delivery(db):
    webhook_deliver(delivery_id=999_999)


def test_it_requeues_a_delivery_whose_retry_is_long_overdue(hook, monkeypatch):
    enqueued: list[int] = []
    monkeypatch.setattr(deliver_webhook_task, "delay", enqueued.append)
    stale = send_event()
    send_event()  # a fresh one, not yet due
    overdue = timezone.now() - notifications.WEBHOOK_STALE_AFTER - timedelta(minutes=1)
    WebhookDelivery.objects.filter(pk=stale.pk).update(next_attempt_at=overdue)
    assert notifications.webhook_requeue_stale() == 1 and enqueued == [stale.pk]


def test_it_audits_a_successful_delivery(receiver, hook):
    delivery = attempt(send_event())
    event = AuditEvent.objects.get(action="webhook.delivered")
    assert event.actor is None and event.target_id == str(delivery.pk)


# --- delivery log -------------------------------------------------------------------------------


@pytest.fixture
def three_outcomes(receiver, hook) -> list[WebhookDelivery]:
    receiver.codes = [200, 410, 503]
    return [attempt(send_event()) for _ in range(3)]


def test_it_lists_every_delivery_on_the_log_page(client, admin_user, hook, three_outcomes):
    client.force_login(admin_user)
    html = client.get(f"{PAGE}{hook.pk}/deliveries/").content.decode()
    for status, code in [("delivered", "200"), ("failed", "410"), ("pending", "503")]:
        row = html.split(f'data-status="{status}"')[1].split("</tr>")[0]
        assert f"<td>{code}</td>" in row and "<td>1</td>" in row
    assert "HTTP 503 Service Unavailable" in html and "retry at" in html


def test_it_lists_every_delivery_via_the_api(api_client_for, admin_user, hook, three_outcomes):
    rows = api_client_for(admin_user).get(f"{API}{hook.pk}/deliveries/").json()["results"]
    assert [(r["status"], r["attempts"], r["last_status_code"]) for r in rows] == [
        ("pending", 1, 503), ("failed", 1, 410), ("delivered", 1, 200),
    ]
    assert rows[1]["last_error"] == "HTTP 410 Gone" and rows[2]["delivered_at"] is not None


def test_it_counts_deliveries_on_the_webhooks_page(client, admin_user, three_outcomes):
    client.force_login(admin_user)
    assert "1 delivered · 1 pending · 1 failed" in client.get(PAGE).content.decode()


# --- with a real Celery worker ----------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_delivers_through_a_real_worker(celery_worker_process, receiver, hook):
    delivery = send_event()  # outside any test transaction: enqueued when notify() commits
    wait_for(lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.DELIVERED).exists())
    [seen] = receiver.requests
    assert seen["valid"] and seen["headers"][HEADER_DELIVERY] == str(delivery.pk)

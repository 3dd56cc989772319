"""Notifications (inbox + email) and signed outgoing webhooks.

Other apps call `notify(...)` inside the transaction that makes the change
worth telling people about; nothing leaves the portal unless it commits.
Webhook deliveries are at-least-once: a receiver deduplicates on the
`X-OpsPortal-Delivery` header (the same id on every retry of one event).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Collection, Iterable
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from accounts.models import Notification, Webhook, WebhookDelivery
from accounts.services import audit_record
from opsportal.errors import DomainError
from opsportal.roles import Role, is_admin

logger = logging.getLogger(__name__)

# Every event name `notify` accepts, with the label admins see when subscribing a
# webhook. Add new events here: an unknown name is a programming error.
EVENTS: dict[str, str] = {
    "promotion.opened": "A promotion request was opened",
    "promotion.approved": "A promotion request was approved",
    "promotion.rejected": "A promotion request was rejected",
    "promotion.commented": "Someone commented on a promotion request",
    "model.promoted": "A model version was promoted to staging or production",
    "model.rolled_back": "A model was rolled back",
    "version.validated": "A model version passed validation",
    "version.failed": "A model version failed validation",
    "scoring_job.finished": "A batch scoring job finished",
    "scoring_job.failed": "A batch scoring job failed",
    "alert.opened": "A monitoring alert opened",
    "alert.resolved": "A monitoring alert was resolved",
    "monitoring.run_failed": "A monitoring run failed",
    "retraining.finished": "A retraining run finished",
    "retraining.failed": "A retraining run failed",
    "campaign.signed_off": "A campaign's business result was signed off",
    "campaign.commented": "Someone commented on a campaign's result",
    "retraining.requested": "A business owner asked for a model to be retrained",
}

HEADER_EVENT = "X-OpsPortal-Event"
HEADER_DELIVERY = "X-OpsPortal-Delivery"
HEADER_TIMESTAMP = "X-OpsPortal-Timestamp"
HEADER_SIGNATURE = "X-OpsPortal-Signature"
SIGNATURE_PREFIX = "sha256="
WEBHOOK_TIMEOUT_SECONDS = 5
WEBHOOK_RETRY_MAX_SECONDS = 600
WEBHOOK_SCHEMES = ("http", "https")
WEBHOOK_USER_AGENT = "OpsPortal-Webhooks/1"
# A pending delivery whose retry is this overdue lost its broker message: re-enqueue it.
WEBHOOK_STALE_AFTER = timedelta(minutes=15)
MAX_ID = 2**63 - 1  # the largest primary key a 64-bit integer column holds

MSG_UNKNOWN_EVENT = "Unknown event {event!r}: add it to accounts.notifications.EVENTS."
MSG_NOT_RELATIVE = "Notification links must be relative to the portal (start with a single '/')."
MSG_BAD_URL = "Enter an http:// or https:// address."
MSG_BAD_EVENTS = "Unknown events: {events}."
MSG_ADMIN_ONLY = "Only administrators can manage webhooks."
MSG_IDS_OR_ALL = "Give either a list of ids or all=true."
MSG_REDIRECT = "HTTP {code}: redirects are not followed (Location: {location})."
MSG_WEBHOOK_INACTIVE = "The webhook is disabled."
MSG_SCHEME_REFUSED = "Refused: only http and https addresses are called."


class NotificationError(DomainError):
    pass


class WebhookTransientError(Exception):
    """A delivery attempt failed in a way worth retrying; `retry_in` seconds from now."""

    def __init__(self, message: str, *, retry_in: int):
        super().__init__(message)
        self.retry_in = retry_in


# --- settings read at call time (tests override them with the `settings` fixture) -----


def retry_base_seconds() -> int:
    return int(getattr(settings, "WEBHOOK_RETRY_BASE_SECONDS", 10))


def max_attempts() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 6))


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after `attempts` tries: base, 2 * base, 4 * base... capped."""
    return min(WEBHOOK_RETRY_MAX_SECONDS, retry_base_seconds() * 2 ** max(attempts - 1, 0))


# --- recipients and inbox -------------------------------------------------------------


def users_with_role(*roles: Role, include_admins: bool = False) -> QuerySet[AbstractBaseUser]:
    """Active users holding any of `roles`; staff only when `include_admins`."""
    wanted = Q(groups__name__in=[str(r) for r in roles])
    if include_admins:
        wanted |= Q(is_staff=True)
    return get_user_model().objects.filter(wanted, is_active=True).distinct().order_by("pk")


def notifications_of(user: Any, *, unread: bool = False) -> QuerySet[Notification]:
    found = Notification.objects.filter(user=user)
    return found.filter(read_at__isnull=True) if unread else found


def unread_count(user: Any) -> int:
    """For the nav badge: 0 for anonymous visitors."""
    if not getattr(user, "is_authenticated", False):
        return 0
    return notifications_of(user, unread=True).count()


def notification_mark_read(
    *, user: Any, ids: Collection[int] | None = None, mark_all: bool = False, ip: str | None = None
) -> int:
    """Mark the user's own unread notifications read (`ids`, or all of them); returns how many."""
    if (ids is None) == (not mark_all):
        raise NotificationError("validation_error", MSG_IDS_OR_ALL, details={"ids": [MSG_IDS_OR_ALL]})
    unread = notifications_of(user, unread=True)
    if not mark_all:
        # An id beyond the key's range names no notification (SQLite refuses such a number in IN).
        unread = unread.filter(pk__in=[i for i in ids or () if 0 < i <= MAX_ID])
    with transaction.atomic():
        marked = unread.update(read_at=timezone.now())
        if marked:
            audit_record(
                actor=user, action="notification.read", ip=ip,
                payload={"count": marked, "all": mark_all} if mark_all else {"count": marked, "ids": sorted(ids or ())},
            )
    return marked


# --- notify ---------------------------------------------------------------------------


def _check_event(event: str) -> None:
    if event not in EVENTS:
        raise ValueError(MSG_UNKNOWN_EVENT.format(event=event))


def _check_relative(url: str) -> None:
    if url and (not url.startswith("/") or url.startswith("//")):
        raise ValueError(MSG_NOT_RELATIVE)


def _unique_active(recipients: Iterable[Any]) -> list[Any]:
    seen: dict[int, Any] = {}
    for user in recipients:
        if user.is_active and user.pk not in seen:
            seen[user.pk] = user
    return list(seen.values())


def absolute_url(url: str) -> str:
    return settings.SITE_URL + (url or "/")


def _email_message(notification: Notification) -> mail.EmailMessage:
    subject = "[OpsPortal] " + " ".join(notification.title.split())  # no newlines: they are header injection
    parts = (notification.title, notification.body, f"Open in OpsPortal: {absolute_url(notification.url)}")
    text = "\n\n".join(part for part in parts if part) + "\n"
    return mail.EmailMessage(subject, text, to=[notification.user.email])


def notification_emails_send(*, notification_ids: list[int]) -> int:
    """Worker: email these notifications to their recipients; SMTP trouble is logged, never raised."""
    notifications = Notification.objects.filter(pk__in=notification_ids).select_related("user").exclude(user__email="")
    messages = [_email_message(n) for n in notifications]
    if not messages:
        return 0
    try:
        with mail.get_connection() as connection:
            connection.send_messages(messages)
    except Exception:  # the change is saved; the inbox still has it
        logger.exception("Could not send %d notification email(s) for %s", len(messages), notifications[0].event)
        return 0
    return len(messages)


def _queue_emails(notification_ids: list[int]) -> None:
    from accounts.tasks import send_notification_emails_task

    send_notification_emails_task.delay(notification_ids)


def _json_safe(payload: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def _enqueue_delivery(delivery_id: int) -> None:
    from accounts.tasks import deliver_webhook_task

    transaction.on_commit(lambda: deliver_webhook_task.delay(delivery_id))


def _create_deliveries(event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    hooks = [hook for hook in Webhook.objects.filter(is_active=True) if hook.wants(event)]
    deliveries = [WebhookDelivery.objects.create(webhook=hook, event=event, payload=data) for hook in hooks]
    for delivery in deliveries:
        _enqueue_delivery(delivery.pk)
    return deliveries


def notify(
    *,
    event: str,
    title: str,
    body: str,
    url: str = "",
    recipients: Iterable[Any] = (),
    payload: dict[str, Any] | None = None,
    email: bool = True,
) -> None:
    """Tell people and systems about `event`, once the surrounding transaction commits.

    Steps: one inbox row per distinct active recipient; one email each (with an
    address), sent by a worker after commit; one pending delivery per active webhook subscribed to
    `event`, each enqueued after commit. Webhook `data` is `payload`, or the
    title, body and absolute link when no payload is given.
    """
    _check_event(event)
    _check_relative(url)
    users = _unique_active(recipients)
    data = _json_safe(payload if payload is not None else {"title": title, "body": body, "url": absolute_url(url)})
    with transaction.atomic():
        created = Notification.objects.bulk_create(
            [Notification(user=u, event=event, title=title[:200], body=body, url=url) for u in users]
        )
        _create_deliveries(event, data)
        emailed = [n.pk for n in created if n.user.email] if email else []
        if emailed:
            # Sending mail is slow I/O: a worker does it, after the change is saved.
            transaction.on_commit(lambda: _queue_emails(emailed))


# --- webhooks: management -------------------------------------------------------------


def _clean_url(url: str) -> str:
    try:
        URLValidator(schemes=list(WEBHOOK_SCHEMES))(url)
    except ValidationError:
        raise NotificationError("validation_error", MSG_BAD_URL, details={"url": [MSG_BAD_URL]}) from None
    scheme, rest = url.split("://", 1)
    return f"{scheme.lower()}://{rest}"


def _clean_events(events: Iterable[str]) -> list[str]:
    chosen = sorted(set(events))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        message = MSG_BAD_EVENTS.format(events=", ".join(unknown))
        raise NotificationError("validation_error", message, details={"events": [message]})
    return chosen


def _require_admin(user: Any) -> None:
    if not is_admin(user):
        raise NotificationError("permission_denied", MSG_ADMIN_ONLY, status=403)


def webhook_create(
    *, admin: Any, name: str, url: str, events: Iterable[str] = (), ip: str | None = None
) -> tuple[Webhook, str]:
    """Create a webhook; returns it with its signing secret, for showing once."""
    _require_admin(admin)
    secret = secrets.token_urlsafe(32)
    fields = {"name": name, "url": _clean_url(url), "events": _clean_events(events)}
    with transaction.atomic():
        webhook = Webhook.objects.create(secret=secret, created_by=admin, **fields)
        audit_record(actor=admin, action="webhook.created", target=webhook, payload=fields, ip=ip)
    return webhook, secret


def webhook_delete(*, admin: Any, webhook: Webhook, ip: str | None = None) -> None:
    """Delete a webhook and its delivery log; queued retries then find nothing to send."""
    _require_admin(admin)
    with transaction.atomic():
        audit_record(
            actor=admin, action="webhook.deleted", target=webhook, ip=ip,
            payload={"name": webhook.name, "url": webhook.url, "deliveries": webhook.deliveries.count()},
        )
        webhook.delete()


def webhooks() -> QuerySet[Webhook]:
    return Webhook.objects.select_related("created_by")


def webhooks_with_counts() -> QuerySet[Webhook]:
    """Each webhook with how many of its deliveries are pending, delivered and failed."""
    counts = {
        str(status): Count("deliveries", filter=Q(deliveries__status=status))
        for status in WebhookDelivery.Status
    }
    return webhooks().annotate(**counts)


def deliveries_of(webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return webhook.deliveries.all()


# --- webhooks: signing ------------------------------------------------------------------


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `b"<timestamp>." + body`: the timestamp is signed, so it cannot be replayed later."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_webhook_signature(
    secret: str, timestamp: str, body: bytes, header: str, tolerance_seconds: int = 300
) -> bool:
    """What a receiver does: right prefix, fresh timestamp, constant-time digest comparison."""
    try:
        age = abs(time.time() - int(timestamp))
    except (TypeError, ValueError):
        return False
    if age > tolerance_seconds or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = webhook_signature(secret, timestamp, body)
    return hmac.compare_digest(expected, header.removeprefix(SIGNATURE_PREFIX))


def delivery_body(delivery: WebhookDelivery) -> bytes:
    # Built from stored fields only, so every retry sends identical bytes.
    document = {
        "id": delivery.pk, "event": delivery.event,
        "created_at": delivery.created_at.isoformat(), "data": delivery.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, cls=DjangoJSONEncoder).encode()


def delivery_headers(delivery: WebhookDelivery, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": WEBHOOK_USER_AGENT,
        HEADER_EVENT: delivery.event,
        HEADER_DELIVERY: str(delivery.pk),
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGNATURE: SIGNATURE_PREFIX + webhook_signature(delivery.webhook.secret, timestamp, body),
    }


# --- webhooks: delivery -----------------------------------------------------------------


def _claim_attempt(delivery_id: int) -> int | None:
    """Count one more attempt, only while pending; the attempt number, or None."""
    pending = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
    if not pending.update(attempts=F("attempts") + 1, next_attempt_at=None):
        return None
    return WebhookDelivery.objects.values_list("attempts", flat=True).get(pk=delivery_id)


def _finish(delivery: WebhookDelivery, status: str, code: int | None, error: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(
            status=status, last_status_code=code, last_error=error[:2000],
            delivered_at=now if status == WebhookDelivery.Status.DELIVERED else None,
        )
        if updated:
            action = "webhook.delivered" if status == WebhookDelivery.Status.DELIVERED else "webhook.delivery_failed"
            audit_record(actor=None, action=action, target=delivery,
                         payload={"webhook": delivery.webhook_id, "status_code": code, "error": error[:500]})


def _schedule_retry(delivery: WebhookDelivery, attempts: int, code: int | None, error: str) -> None:
    if attempts >= max_attempts():
        _finish(delivery, WebhookDelivery.Status.FAILED, code, f"{error} (gave up after {attempts} attempts)")
        return
    delay = retry_delay(attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(
        last_status_code=code, last_error=error[:2000], next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    raise WebhookTransientError(error, retry_in=delay)


def _post(delivery: WebhookDelivery) -> requests.Response:
    body = delivery_body(delivery)
    response = requests.post(
        delivery.webhook.url, data=body, headers=delivery_headers(delivery, body),
        timeout=WEBHOOK_TIMEOUT_SECONDS, allow_redirects=False, stream=True,
    )
    response.close()  # only the status matters; never download a large reply
    return response


def _outcome(delivery: WebhookDelivery, attempts: int, response: requests.Response) -> None:
    code = response.status_code
    if 200 <= code < 300:
        _finish(delivery, WebhookDelivery.Status.DELIVERED, code, "")
    elif code == 429 or code >= 500:
        _schedule_retry(delivery, attempts, code, f"HTTP {code} {response.reason or ''}".strip())
    elif 300 <= code < 400:
        location = response.headers.get("Location", "")
        _finish(delivery, WebhookDelivery.Status.FAILED, code, MSG_REDIRECT.format(code=code, location=location))
    else:
        _finish(delivery, WebhookDelivery.Status.FAILED, code, f"HTTP {code} {response.reason or ''}".strip())


def _refusal(delivery: WebhookDelivery) -> str:
    if not delivery.webhook.is_active:
        return MSG_WEBHOOK_INACTIVE
    if delivery.webhook.url.split("://", 1)[0].lower() not in WEBHOOK_SCHEMES:
        return MSG_SCHEME_REFUSED
    return ""


def webhook_deliver(*, delivery_id: int) -> None:
    """One delivery attempt.

    Steps: claim the attempt (conditional on `pending`; a finished or deleted
    delivery is left alone); refuse disabled webhooks and non-HTTP(S) addresses;
    POST the signed body (5 s timeout, no redirects); 2xx → delivered; 4xx (not
    429) or 3xx → failed now; connection error, timeout, 429 or 5xx → raise
    `WebhookTransientError` with the backoff delay, or failed once the attempts
    reach `max_attempts()`.
    """
    attempts = _claim_attempt(delivery_id)
    if attempts is None:
        return
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:  # its webhook was deleted meanwhile
        return
    refusal = _refusal(delivery)
    if refusal:
        _finish(delivery, WebhookDelivery.Status.FAILED, None, refusal)
        return
    try:
        response = _post(delivery)
    except (requests.ConnectionError, requests.Timeout) as exc:
        _schedule_retry(delivery, attempts, None, f"{type(exc).__name__}: {exc}")
        return
    except requests.RequestException as exc:
        _finish(delivery, WebhookDelivery.Status.FAILED, None, f"{type(exc).__name__}: {exc}")
        return
    _outcome(delivery, attempts, response)


def webhook_requeue_stale(*, now: Any = None) -> int:
    """Re-enqueue pending deliveries whose broker message was lost (e.g. a Redis restart)."""
    from accounts.tasks import deliver_webhook_task

    cutoff = (now or timezone.now()) - WEBHOOK_STALE_AFTER
    stale = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).filter(
        Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff)
    )
    ids = list(stale.values_list("pk", flat=True)[:1000])
    for delivery_id in ids:
        deliver_webhook_task.delay(delivery_id)
    return len(ids)

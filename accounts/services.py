"""Accounts writes: API tokens and the audit trail every state change goes through."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import authenticate
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import TOKEN_PREFIX, ApiToken, AuditEvent

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "system"
# Any fixed 64-bit number: the advisory lock that serialises chain appends.
AUDIT_LOCK_KEY = 0x0A0D17
TOKEN_TOUCH_EVERY = timedelta(minutes=1)
MAX_TOKEN_DAYS = 3650


# --- audit trail -------------------------------------------------------------------


def _normalise_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def _target_fields(target: models.Model | None) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    return target._meta.label_lower, str(target.pk), str(target)[:255]


def audit_hash(
    *,
    prev_hash: str,
    created_at: datetime,
    actor_id: int | None,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    target_label: str,
    payload: Any,
    ip: str | None,
) -> str:
    content = json.dumps(
        [prev_hash, created_at.isoformat(), actor_id, actor_label, action,
         target_type, target_id, target_label, payload, ip],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(content.encode()).hexdigest()


def _lock_chain() -> None:
    # SQLite's IMMEDIATE transactions already hold the only write lock.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])


def audit_record(
    *,
    actor: Any,
    action: str,
    target: models.Model | None = None,
    payload: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one event to the chain. `actor=None` means the system did it."""
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    target_type, target_id, target_label = _target_fields(target)
    fields: dict[str, Any] = {
        "actor_id": actor.pk if is_user else None,
        "actor_label": actor.get_username() if is_user else SYSTEM_ACTOR,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "target_label": target_label,
        # Stored exactly as hashed: round-trip through JSON once.
        "payload": json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder)),
        "ip": _normalise_ip(ip),
    }
    with transaction.atomic():
        _lock_chain()
        prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        fields["prev_hash"] = prev_hash or GENESIS_HASH
        fields["created_at"] = timezone.now()
        return AuditEvent.objects.create(hash=audit_hash(**fields), **fields)


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def audit_verify() -> ChainReport:
    """Walk the chain in order; report the first event whose link is broken."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != expected_prev:
            return ChainReport(checked, event.pk, "previous-hash mismatch: an event before it was removed or altered")
        recomputed = audit_hash(
            prev_hash=event.prev_hash, created_at=event.created_at, actor_id=event.actor_id,
            actor_label=event.actor_label, action=event.action, target_type=event.target_type,
            target_id=event.target_id, target_label=event.target_label, payload=event.payload,
            ip=event.ip,
        )
        if recomputed != event.hash:
            return ChainReport(checked, event.pk, "content hash mismatch: this event was altered")
        expected_prev = event.hash
        checked += 1
    return ChainReport(checked)


# --- API tokens ---------------------------------------------------------------------------


def token_digest(raw: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no guessing to slow down).
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(
    *, user: Any, name: str, expires_in_days: int | None, ip: str | None = None, scope: str = "full"
) -> tuple[ApiToken, str]:
    """Create a token; returns it with the raw secret, which is never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, key_prefix=raw[: len(TOKEN_PREFIX) + 6],
            digest=token_digest(raw), expires_at=expires_at, scope=scope,
        )
        audit_record(
            actor=user, action="token.created", target=token, ip=ip,
            payload={"name": name, "expires_at": expires_at, "scope": scope},
        )
    return token, raw


def token_revoke(*, token: ApiToken, actor: Any, ip: str | None = None) -> bool:
    """Revoke once; False when it was already revoked (nothing written)."""
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_record(actor=actor, action="token.revoked", target=token, ip=ip)
    return updated == 1


def token_touch(*, token: ApiToken) -> None:
    """Record use at most once a minute, so the hot path rarely writes."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


def token_issue_for_credentials(
    *, request: HttpRequest, username: str, password: str, name: str, expires_in_days: int | None,
    scope: str = "full",
) -> tuple[ApiToken, str] | None:
    """Password → token; None when the credentials are wrong or the account locked."""
    user = authenticate(request=request, username=username, password=password)
    if user is None:
        return None
    return token_create(user=user, name=name, expires_in_days=expires_in_days, ip=request.META.get("REMOTE_ADDR"),
                        scope=scope)

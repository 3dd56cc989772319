from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken, AuditEvent
from accounts.services import token_digest


def token_for_secret(raw: str) -> ApiToken | None:
    """The token matching `raw` (active or not), with its user and the user's roles (one query)."""
    from accounts.hotpath import token_with_user

    return token_with_user(token_digest(raw))


def tokens_of(user: Any) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def tokens_active_count(user: Any) -> int:
    return tokens_of(user).filter(revoked_at__isnull=True).exclude(expires_at__lte=timezone.now()).count()


def audit_events(
    *, action: str = "", actor: str = "", target_type: str = "", target_id: str = ""
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_label=actor)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    return events

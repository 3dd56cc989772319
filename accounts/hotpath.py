"""The token check every API call makes, in one SQL round trip.

The ORM spends far longer building a query than PostgreSQL spends answering it,
and the real-time prediction path pays that on every call. Here the token, its
user and the user's role names come back from one hand-written join (portable
across PostgreSQL and SQLite), and the rows become ordinary model instances whose
other fields load on first use, exactly as `.only()` would leave them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.dateparse import parse_datetime

from accounts.models import ApiToken
from opsportal.hotsql import fetch_all
from opsportal.roles import Role

# In each model's own field order: `from_db` fills the listed fields in that order.
TOKEN_FIELDS = ("id", "user_id", "scope", "expires_at", "last_used_at", "revoked_at")
USER_FIELDS = ("id", "is_superuser", "username", "is_staff", "is_active")
_KNOWN_ROLES = frozenset(str(role) for role in Role)
_sql: str | None = None


def _build_sql() -> str:
    qn = connection.ops.quote_name
    user = get_user_model()
    groups_through = user.groups.through
    token_cols = ", ".join(f"t.{qn(ApiToken._meta.get_field(f).column)}" for f in TOKEN_FIELDS)
    user_cols = ", ".join(f"u.{qn(user._meta.get_field(f).column)}" for f in USER_FIELDS)
    return (
        f"SELECT {token_cols}, {user_cols}, g.{qn('name')} "  # noqa: S608  (quoted names from model metadata; values are parameters)
        f"FROM {qn(ApiToken._meta.db_table)} t "
        f"INNER JOIN {qn(user._meta.db_table)} u ON u.{qn('id')} = t.{qn('user_id')} "
        f"LEFT JOIN {qn(groups_through._meta.db_table)} ug ON ug.{qn('user_id')} = u.{qn('id')} "
        f"LEFT JOIN {qn(user.groups.field.related_model._meta.db_table)} g ON g.{qn('id')} = ug.{qn('group_id')} "
        f"WHERE t.{qn('digest')} = %s"
    )


def _aware(value: Any) -> datetime | None:
    """SQLite hands back text or naive UTC; PostgreSQL aware datetimes."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def token_with_user(digest: str) -> ApiToken | None:
    """The token with this digest (active or not), its `user`, and the user's roles already known."""
    global _sql
    if _sql is None:
        _sql = _build_sql()
    rows = fetch_all(_sql, [digest])
    if not rows:
        return None
    first = rows[0]
    width = len(TOKEN_FIELDS)
    values = list(first[:width])
    for i in (3, 4, 5):
        values[i] = _aware(values[i])
    token = ApiToken.from_db(connection.alias, list(TOKEN_FIELDS), values)
    user_id, is_superuser, username, is_staff, is_active = first[width:width + len(USER_FIELDS)]
    user_values = [user_id, bool(is_superuser), username, bool(is_staff), bool(is_active)]
    user = get_user_model().from_db(connection.alias, list(USER_FIELDS), user_values)
    user._opsportal_roles = frozenset(row[-1] for row in rows if row[-1] in _KNOWN_ROLES)
    token.user = user
    return token


def _check_field_order() -> None:
    """Fail loudly at import if a model's field order ever stops matching the lists above."""
    for model, names in ((ApiToken, TOKEN_FIELDS), (get_user_model(), USER_FIELDS)):
        order = [f.attname for f in model._meta.concrete_fields if f.attname in names]
        if tuple(order) != names:
            raise RuntimeError(f"accounts.hotpath: {model.__name__} fields must be listed as {order}")


_check_field_order()

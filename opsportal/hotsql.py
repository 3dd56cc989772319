"""Read queries of the real-time prediction path, on the database driver's own cursor.

Django's cursor wrapper rewrites the SQL on every call (SQLite's `%s` to `?`) and
wraps each execute in several layers; for the two queries every prediction makes
that cost as much as the queries themselves. Here the statement is converted once,
run on the driver's cursor, and database errors still arrive as Django's own
exceptions (the API answers them with 503). Such queries do not appear in Django's
query log (`connection.queries`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection

_native: dict[tuple[str, str], str] = {}


def _native_sql(sql: str) -> str:
    key = (connection.vendor, sql)
    found = _native.get(key)
    if found is None:
        found = _native[key] = sql.replace("%s", "?") if connection.vendor == "sqlite" else sql
    return found


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of a parameterised read query written with `%s` placeholders."""
    statement = _native_sql(sql)
    with connection.wrap_database_errors:
        connection.ensure_connection()
        if connection.vendor == "postgresql":
            return _fetch_prepared(connection.connection, statement, params)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(statement, params)
            return cursor.fetchall()
        finally:
            cursor.close()


def _fetch_prepared(raw: Any, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """PostgreSQL: a server-side prepared statement, planned once per connection instead of on every
    call (Django's cursors bind on the client, so the server parses and plans each query again)."""
    import psycopg

    with psycopg.Cursor(raw) as cursor:
        cursor.execute(statement, params, prepare=True)
        return cursor.fetchall()

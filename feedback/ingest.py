"""Reading uploaded rows (CSV files or JSON lists) and checking single values, with errors people can act on.

Nothing here writes: services decide what a valid row does. Row numbers are 1-based
data rows (row 1 is the line after the CSV header, or the first item of a JSON list).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from datetime import datetime, time
from pathlib import Path
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from opsportal.errors import DomainError

MSG_NOT_CSV = "The file is not UTF-8 CSV text."
MSG_EMPTY = "The file is empty."
MSG_MISSING_COLUMNS = "The file lacks the column(s) {columns}; its header is: {header}."
MSG_NOT_A_LIST = "Send a JSON list of objects (or an object with a “rows” list)."
MSG_TOO_MANY_ROWS = "At most {limit:,} rows are accepted in one request; send a CSV file for more."
MSG_ROW_NOT_OBJECT = "Each row must be a JSON object."
MSG_BAD_NUMBER = "{field}: expected a number, got {value!r}."
MSG_BAD_TIME = (
    "observed_at: expected an ISO date or date-time such as 2026-03-01 or 2026-03-01T12:00:00Z, got {value!r}."
)
MSG_EMPTY_FIELD = "{field}: is empty."
MSG_TOO_LONG = "{field}: longer than {limit} characters."
CSV_FIELD_LIMIT = 10_000

Row = tuple[int, dict[str, Any]]


class IngestError(DomainError):
    pass


def _decoded_lines(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            yield from text
        except UnicodeDecodeError:
            raise IngestError("bad_file", MSG_NOT_CSV) from None


def csv_header(path: Path, required: Iterable[str]) -> list[str]:
    """The file's header, refusing files that lack `required` columns before anything is stored."""
    if path.stat().st_size == 0:
        raise IngestError("bad_file", MSG_EMPTY)
    header = next(csv.reader(_decoded_lines(path)), None)
    if not header:
        raise IngestError("bad_file", MSG_EMPTY)
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        message = MSG_MISSING_COLUMNS.format(columns=", ".join(missing), header=", ".join(header[:30]))
        raise IngestError("bad_file", message, details={"file": [message]})
    return header


def csv_rows(path: Path) -> Iterator[Row]:
    """Each data row as (row number, {column: text}), header names stripped."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(_decoded_lines(path))
    try:
        header = [h.strip() for h in next(reader)]
        for number, values in enumerate(reader, start=1):
            if values:
                yield number, dict(zip(header, values, strict=False))
    except csv.Error as exc:
        raise IngestError("bad_file", f"The CSV cannot be read: {exc}") from None


def csv_row_count(path: Path) -> int:
    return sum(1 for _ in csv_rows(path))


def json_rows(body: Any, limit: int) -> list[Row]:
    """Rows from a JSON list (or {"rows": [...]}), bounded to `limit`."""
    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise IngestError("validation_error", MSG_NOT_A_LIST)
    if len(rows) > limit:
        raise IngestError("too_large", MSG_TOO_MANY_ROWS.format(limit=limit), status=413)
    return list(enumerate(rows, start=1))


def chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def text(row: dict[str, Any], field: str, limit: int = 200) -> str:
    """A required short text field, stripped."""
    value = row.get(field)
    value = "" if value is None else str(value).strip()
    if not value:
        raise ValueError(MSG_EMPTY_FIELD.format(field=field))
    if len(value) > limit:
        raise ValueError(MSG_TOO_LONG.format(field=field, limit=limit))
    return value


def number(row: dict[str, Any], field: str, *, required: bool = True) -> float | None:
    """A finite number from JSON or CSV text; booleans count as 1 and 0."""
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(MSG_EMPTY_FIELD.format(field=field))
        return None
    if isinstance(value, bool):
        return float(value)
    try:
        parsed = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(MSG_BAD_NUMBER.format(field=field, value=str(value)[:50])) from None
    if not math.isfinite(parsed):
        raise ValueError(MSG_BAD_NUMBER.format(field=field, value=str(value)[:50]))
    return parsed


def moment(row: dict[str, Any], field: str = "observed_at") -> datetime | None:
    """An aware date-time from ISO text (a bare date is midnight in the portal's time zone), or None."""
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    raw = str(value).strip()
    try:
        parsed = parse_datetime(raw)
        if parsed is None:
            day = parse_date(raw)
            parsed = datetime.combine(day, time()) if day else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(MSG_BAD_TIME.format(value=raw[:50]))
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def row_error(number: int, message: str, row: dict[str, Any] | None = None) -> dict[str, Any]:
    entity = (row or {}).get("entity_id", (row or {}).get("id", ""))
    return {"row": number, "entity_id": str(entity)[:200] if entity is not None else "", "error": message}

"""Request rows → a DataFrame in the model's column order, checked against the version's signature.

Accepts OpsPortal's `{"rows": [...], "ids": [...]}` and MLflow's `dataframe_split` /
`dataframe_records`, so existing MLflow clients can switch. Every problem is named
(column, row, what was wrong) instead of failing on the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from opsportal.errors import DomainError

MAX_ROWS = 10_000
MAX_PROBLEMS = 50
MSG_BODY = 'Send {"rows": [{column: value, ...}], "ids": [...]}, or MLflow\'s "dataframe_split" / "dataframe_records".'
MSG_INVALID = "The rows do not match the model's inputs; see details."


class InputError(DomainError):
    pass


@dataclass
class ParsedInput:
    """Checked rows as dicts in the model's column order; the DataFrame is built only if asked for."""

    records: list[dict[str, Any]]
    columns: list[str]
    ids: list[Any] | None
    unseen_categories: dict[str, int] = field(default_factory=dict)
    _frame: pd.DataFrame | None = None

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = pd.DataFrame.from_records(self.records, columns=self.columns)
        return self._frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, ids: list[Any] | None) -> ParsedInput:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        return cls(records=records, columns=list(frame.columns), ids=ids, _frame=frame)


def _records(body: Any) -> tuple[list[Any], list[Any] | None]:
    if not isinstance(body, dict):
        raise InputError("malformed_request", MSG_BODY)
    if "rows" in body:
        return body["rows"], body.get("ids")
    if "dataframe_records" in body:
        return body["dataframe_records"], body.get("ids")
    split = body.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list):
        columns = split["columns"]
        rows = [dict(zip(columns, row, strict=False)) if isinstance(row, list) else row for row in split["data"]]
        return rows, body.get("ids") or split.get("index")
    raise InputError("malformed_request", MSG_BODY)


def _check_shape(rows: Any, ids: Any) -> None:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise InputError("malformed_request", "rows must be a non-empty list of objects (column → value).")
    if len(rows) > MAX_ROWS:
        raise InputError("too_many_rows", f"At most {MAX_ROWS} rows per request; use a batch scoring job for more.",
                         status=413)
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(rows)):
        raise InputError("validation_error", "ids must be a list with one id per row.",
                         details={"ids": [f"expected {len(rows)} ids"]})


@dataclass(frozen=True)
class Column:
    """One signature input, ready for checking: read once per signature, not once per request."""

    name: str
    dtype: str
    nullable: bool
    known: frozenset[Any] | None  # the categories seen in the reference data (None: not tracked)


_compiled: dict[int, tuple[dict[str, Any], list[Column]]] = {}


def signature_columns(signature: dict[str, Any]) -> list[Column]:
    """The signature's inputs as Columns, kept per signature object (a ready version never changes)."""
    found = _compiled.get(id(signature))
    if found is not None and found[0] is signature:
        return found[1]
    columns = [Column(c["name"], c["dtype"], bool(c.get("nullable")),
                      frozenset(c["categories"]) if c["dtype"] == "string" and "categories" in c
                      and not c.get("categories_truncated") else None)
               for c in signature.get("inputs", [])]
    if len(_compiled) > 1000:
        _compiled.clear()
    _compiled[id(signature)] = (signature, columns)
    return columns


def _value_problem(value: Any, column: Column) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None if column.nullable else "is null, and this column never is"
    kind = column.dtype
    if kind in ("integer", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"expected a number, got {value!r}"[:120]
        if kind == "integer" and float(value) != int(value):
            return f"expected a whole number, got {value!r}"
    elif kind == "boolean" and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"[:120]
    elif kind == "string" and not isinstance(value, str):
        return f"expected text, got {value!r}"[:120]
    return None


def parse(body: Any, signature: dict[str, Any]) -> ParsedInput:
    rows, ids = _records(body)
    _check_shape(rows, ids)
    columns = signature_columns(signature)
    names = [c.name for c in columns]
    present = set().union(*(r.keys() for r in rows))
    problems: dict[str, Any] = {}
    missing = [n for n in names if n not in present]
    extra = sorted(present - set(names))
    if missing:
        problems["missing_columns"] = missing
    if extra:
        problems["unknown_columns"] = extra
    cells = []
    for index, row in enumerate(rows):
        for column in columns:
            if column.name not in row:
                if column.name in present:
                    cells.append({"row": index, "column": column.name, "problem": "is missing from this row"})
                continue
            problem = _value_problem(row[column.name], column)
            if problem:
                cells.append({"row": index, "column": column.name, "problem": problem})
    if cells:
        problems["values"] = cells[:MAX_PROBLEMS]
        problems["value_problem_count"] = len(cells)
    if problems:
        raise InputError("validation_error", MSG_INVALID, details=problems)
    records = [{c.name: _typed(row.get(c.name), c) for c in columns} for row in rows]
    return ParsedInput(records=records, columns=names, ids=ids, unseen_categories=unseen(records, columns))


def _typed(value: Any, column: Column) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value) if column.dtype == "float" else value


def unseen(records: list[dict[str, Any]], columns: list[Column]) -> dict[str, int]:
    """Per string column, how many values the model never saw in its reference data."""
    counts = {}
    for column in columns:
        if column.known is None:
            continue
        count = sum(1 for r in records if r[column.name] is not None and r[column.name] not in column.known)
        if count:
            counts[column.name] = count
    return counts

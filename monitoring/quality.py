"""Data quality of current data against the reference: missing rate change, out-of-range values,
unseen categories and type errors, and the current frame typed like the reference for the drift engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring import drift

UNSEEN_LISTED = 20


@dataclass
class ColumnQuality:
    column: str
    rows: int
    missing_reference: float
    missing_current: float
    out_of_range: int = 0
    type_errors: int = 0
    unseen: dict[Any, int] = field(default_factory=dict)

    @property
    def unseen_count(self) -> int:
        return sum(self.unseen.values())

    def shares(self) -> dict[str, float]:
        rows = max(self.rows, 1)
        return {"missing_increase": self.missing_current - self.missing_reference,
                "unseen_share": self.unseen_count / rows, "out_of_range_share": self.out_of_range / rows,
                "type_error_share": self.type_errors / rows}

    def unseen_listed(self) -> list[list[Any]]:
        top = sorted(self.unseen.items(), key=lambda kv: (-kv[1], str(kv[0])))[:UNSEEN_LISTED]
        return [[k, v] for k, v in top]


def _numeric(series: pd.Series, reference: drift.ColumnReference,
             summary: dict[str, Any]) -> tuple[pd.Series, dict[str, int]]:
    coerced = pd.to_numeric(series, errors="coerce") if series.dtype == object else series.astype(float)
    type_errors = int((series.notna() & coerced.isna()).sum())
    values = coerced.to_numpy(dtype=float, na_value=np.nan)
    low, high = summary.get("min"), summary.get("max")
    out = 0
    if low is not None and high is not None:
        with np.errstate(invalid="ignore"):
            out = int(np.count_nonzero((values < low) | (values > high)))
    return coerced, {"type_errors": type_errors, "out_of_range": out}


def _categorical(series: pd.Series, reference: drift.ColumnReference) -> tuple[pd.Series, dict[str, Any]]:
    present = series.dropna()
    type_errors = 0
    if reference.categories and all(isinstance(k, str) for k in reference.categories):
        not_text = present.map(lambda v: not isinstance(v, str))
        type_errors = int(not_text.sum())
        if type_errors:
            series = series.where(series.isna(), series.astype(str))
    counts = drift.category_counts(series)
    unseen = {k: v for k, v in counts.items() if k not in reference.categories}
    return series, {"type_errors": type_errors, "unseen": unseen}


def check(current: pd.DataFrame, references: dict[str, drift.ColumnReference],
          summaries: dict[str, dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, ColumnQuality]]:
    """The current frame typed for the drift engine, and each column's quality findings."""
    rows = len(current)
    typed, findings = {}, {}
    for name, reference in references.items():
        series = current[name] if name in current.columns else pd.Series([None] * rows, dtype=object, name=name)
        summary = summaries.get(name, {})
        if reference.kind == drift.NUMERICAL:
            typed[name], facts = _numeric(series, reference, summary)
        else:
            typed[name], facts = _categorical(series, reference)
        findings[name] = ColumnQuality(column=name, rows=rows, missing_reference=summary.get("missing_share", 0.0),
                                       missing_current=float(series.isna().mean()) if rows else 0.0, **facts)
    return pd.DataFrame(typed, index=current.index), findings


def overall(findings: dict[str, ColumnQuality]) -> dict[str, Any]:
    """The worst column per finding, for badges and alert rules."""
    worst: dict[str, Any] = {}
    for key in ("missing_increase", "unseen_share", "out_of_range_share", "type_error_share"):
        best = max(findings.values(), key=lambda q: q.shares()[key], default=None)
        worst[key] = {"value": best.shares()[key] if best else 0.0, "column": best.column if best else ""}
    return worst

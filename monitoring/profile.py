"""Reference profiles: per column, what later data is compared against.

Two forms of the same facts: a JSON summary people read (missing rate, range,
quantiles, histogram, category shares) and an .npz file holding what the drift
engine needs to reproduce Evidently exactly (sorted finite values, category
counts). The .npz is read with `allow_pickle=False`: column names and
categories travel as JSON text, never as pickled objects.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring import drift

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 50
PREDICTION = "__prediction__"


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _numeric_summary(reference: drift.ColumnReference) -> dict[str, Any]:
    values = reference.sorted_values
    if values is None or values.size == 0:
        return {}
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {
        "min": float(values[0]), "max": float(values[-1]), "mean": float(values.mean()), "std": reference.std,
        "quantiles": {str(q): float(np.quantile(values, q)) for q in QUANTILES},
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "unique": reference.n_unique,
    }


def _categorical_summary(reference: drift.ColumnReference) -> dict[str, Any]:
    total = max(reference.rows, 1)
    top = sorted(reference.categories.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_CATEGORIES]
    return {"unique": len(reference.categories), "top": [[k, v / total] for k, v in top],
            "truncated": len(reference.categories) > TOP_CATEGORIES}


def summarize(series: pd.Series, reference: drift.ColumnReference) -> dict[str, Any]:
    missing = int(len(series) - reference.rows)
    summary = {"name": str(series.name), "kind": reference.kind, "dtype": str(series.dtype), "rows": reference.rows,
               "missing": missing, "missing_share": missing / len(series) if len(series) else 0.0}
    extra = _numeric_summary(reference) if reference.kind == drift.NUMERICAL else _categorical_summary(reference)
    return {**summary, **extra}


def build(frame: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, drift.ColumnReference]]:
    """Summaries and comparison data of every column whose type Evidently would compare."""
    references = drift.references_for(frame)
    return [summarize(frame[name], ref) for name, ref in references.items()], references


def prediction_reference(values: pd.Series, kind: str) -> tuple[dict[str, Any], drift.ColumnReference]:
    reference = drift.column_reference(values.rename(PREDICTION), kind)
    return summarize(values.rename(PREDICTION), reference), reference


# --- the comparison file ---------------------------------------------------------------------------


def dumps(references: dict[str, drift.ColumnReference]) -> bytes:
    manifest, arrays = [], {}
    for index, (name, ref) in enumerate(references.items()):
        entry: dict[str, Any] = {"name": name, "kind": ref.kind, "rows": ref.rows, "std": ref.std}
        if ref.kind == drift.NUMERICAL:
            arrays[f"v{index}"] = ref.sorted_values
            entry["values"] = f"v{index}"
        else:
            entry["categories"] = [[k, v] for k, v in ref.categories.items()]
        manifest.append(entry)
    buffer = io.BytesIO()
    np.savez(buffer, manifest=np.array(json.dumps(manifest)), **arrays)
    return buffer.getvalue()


def loads(path: Path) -> dict[str, drift.ColumnReference]:
    with np.load(path, allow_pickle=False) as data:
        manifest = json.loads(str(data["manifest"]))
        references = {}
        for entry in manifest:
            if entry["kind"] == drift.NUMERICAL:
                references[entry["name"]] = drift.ColumnReference(
                    entry["name"], drift.NUMERICAL, entry["rows"], sorted_values=data[entry["values"]],
                    std=entry["std"])
            else:
                categories = {_key(k): v for k, v in entry["categories"]}
                references[entry["name"]] = drift.ColumnReference(entry["name"], drift.CATEGORICAL, entry["rows"],
                                                                  categories=categories)
    return references


def _key(value: Any) -> Any:
    # JSON turns tuples into lists; categories are scalars, so anything else is kept as text.
    return value if isinstance(value, (str, int, float, bool)) else str(value)

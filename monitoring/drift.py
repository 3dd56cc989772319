"""OpsPortal's drift engine: the verdicts of Evidently 0.7's `DataDriftPreset` defaults, computed fast.

Evidently (`evidently/legacy/calculations/stattests/registry.py::_get_default_stattest`)
picks one method per column from its type, the reference size and the number of
distinct values of reference and current together (NaN and ±inf dropped first):

| reference rows | column | distinct values | method (threshold, drift when) |
|---|---|---|---|
| ≤ 1000 | numerical | > 5 | Kolmogorov-Smirnov p-value (0.05, p ≤ t) |
| ≤ 1000 | numerical ≤ 5, categorical | > 2 | chi-squared p-value (0.05, p < t) |
| ≤ 1000 | numerical ≤ 5, categorical | ≤ 2 | two-proportion Z-test p-value (0.05, p < t) |
| > 1000 | numerical | > 5 | Wasserstein distance / std(reference) (0.1, d ≥ t) |
| > 1000 | numerical ≤ 5, categorical | (any) | Jensen-Shannon distance of category shares (0.1, d ≥ t) |

and calls the dataset drifted when at least half of the columns drift
(`drift_share=0.5`). Evidently computes all of this through pandas per column;
here the reference side comes from a precomputed profile (sorted values,
category counts), and the Wasserstein distance merges two sorted arrays with
one `searchsorted` instead of re-sorting both samples. The small-sample tests
(KS, chi-squared) call scipy on the same inputs Evidently builds, so their
p-values are identical.

Column types follow Evidently's inference (`evidently/core/datasets.py::infer_column_type`)
from the reference data, except that strings are always categorical (tabular
models have no free-text inputs; Evidently's "text" drift is a different test).
Reports pass these types to Evidently explicitly, so both always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
SMALL_REFERENCE_ROWS = 1000
FEW_VALUES = 5
TWO_VALUES = 2
INTEGER_CARDINALITY_LIMIT = 10
DRIFT_SHARE = 0.5
STD_FLOOR = 0.001


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    threshold: float
    kind: str  # "p_value": drift when small; "distance": drift when large
    inclusive: bool = False

    def drifted(self, score: float) -> bool:
        if self.kind == "distance":
            return bool(score >= self.threshold)
        if np.isnan(score):
            return False
        return bool(score <= self.threshold) if self.inclusive else bool(score < self.threshold)


KS = Method("ks", "K-S p_value", 0.05, "p_value", inclusive=True)
CHI_SQUARE = Method("chisquare", "chi-square p_value", 0.05, "p_value")
Z_TEST = Method("z", "Z-test p_value", 0.05, "p_value")
WASSERSTEIN = Method("wasserstein", "Wasserstein distance (normed)", 0.1, "distance")
JENSEN_SHANNON = Method("jensenshannon", "Jensen-Shannon distance", 0.1, "distance")
# Not Evidently's: a column with values in the reference and none now cannot be tested; it is drift.
ALL_MISSING = Method("all_missing", "all values missing", 1.0, "distance")
METHODS = {m.name: m for m in (KS, CHI_SQUARE, Z_TEST, WASSERSTEIN, JENSEN_SHANNON, ALL_MISSING)}


def column_type(series: pd.Series) -> str | None:
    """Evidently's type for a column (None: not compared, e.g. dates or an all-empty column)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL
    if pd.api.types.is_float_dtype(dtype):
        return NUMERICAL
    if pd.api.types.is_integer_dtype(dtype):
        return CATEGORICAL if series.nunique() <= INTEGER_CARDINALITY_LIMIT else NUMERICAL
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return None
    return CATEGORICAL if series.notna().any() else None


# --- the reference side: computed once per version ---------------------------------------------


@dataclass
class ColumnReference:
    """What the comparison needs from the reference: sorted finite values or category counts."""

    name: str
    kind: str
    rows: int  # non-missing, finite values
    sorted_values: np.ndarray | None = None  # numerical
    std: float = 0.0
    categories: dict[Any, int] = field(default_factory=dict)  # categorical

    @property
    def n_unique(self) -> int:
        if self.kind == NUMERICAL:
            return _unique_count_sorted(self.sorted_values)
        return len(self.categories)


def _unique_count_sorted(values: np.ndarray | None) -> int:
    if values is None or values.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(values)) + 1)


def clean_numeric(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def clean_categories(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        series = series.replace([np.inf, -np.inf], np.nan)
    return series.dropna()


def category_counts(series: pd.Series) -> dict[Any, int]:
    return {_plain(k): int(v) for k, v in clean_categories(series).value_counts(sort=False).items()}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def column_reference(series: pd.Series, kind: str) -> ColumnReference:
    if kind == NUMERICAL:
        values = np.sort(clean_numeric(series))
        std = float(np.std(values)) if values.size else 0.0
        return ColumnReference(series.name, NUMERICAL, int(values.size), sorted_values=values, std=std)
    counts = category_counts(series)
    return ColumnReference(series.name, CATEGORICAL, sum(counts.values()), categories=counts)


# --- the comparison ------------------------------------------------------------------------------


@dataclass
class ColumnDrift:
    column: str
    kind: str
    method: str
    method_label: str
    threshold: float
    score: float
    drifted: bool
    reference_rows: int
    current_rows: int

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "method": self.method, "method_label": self.method_label,
                "threshold": self.threshold, "score": self.score, "drifted": self.drifted,
                "reference_rows": self.reference_rows, "current_rows": self.current_rows}


@dataclass
class DatasetDrift:
    columns: list[ColumnDrift]
    drift_share_threshold: float = DRIFT_SHARE

    @property
    def drifted_count(self) -> int:
        return sum(1 for c in self.columns if c.drifted)

    @property
    def share(self) -> float:
        return self.drifted_count / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.columns) and self.share >= self.drift_share_threshold


def choose_method(reference_rows: int, kind: str, n_values: int) -> Method:
    """`_get_default_stattest`, line by line."""
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if kind == NUMERICAL and n_values > FEW_VALUES:
            return KS
        return CHI_SQUARE if n_values > TWO_VALUES else Z_TEST
    if kind == NUMERICAL and n_values > FEW_VALUES:
        return WASSERSTEIN
    return JENSEN_SHANNON


def wasserstein_normed(reference_sorted: np.ndarray, reference_std: float, current_sorted: np.ndarray) -> float:
    """scipy's `wasserstein_distance(ref, cur) / max(std(ref), 0.001)` from two sorted samples.

    The two sorted samples are merged by position (one searchsorted), then the
    distance is the sum over consecutive merged values of |F_ref - F_cur| * gap,
    with both empirical CDFs counted exactly as integers. With equal sample sizes the
    same integral is the mean absolute difference of the sorted samples.
    """
    n, m = reference_sorted.size, current_sorted.size
    if n == m:  # equal sizes: the quantile functions step together, W1 = mean |r_(i) - c_(i)|
        return float(np.mean(np.abs(reference_sorted - current_sorted))) / max(reference_std, STD_FLOOR)
    after = np.searchsorted(reference_sorted, current_sorted, side="right") + np.arange(m)
    is_current = np.zeros(n + m, dtype=bool)
    is_current[after] = True
    merged = np.empty(n + m)
    merged[after] = current_sorted
    merged[~is_current] = reference_sorted
    current_cdf = np.cumsum(is_current)[:-1]
    reference_cdf = np.arange(1, n + m) - current_cdf
    gaps = np.diff(merged)
    distance_value = float(np.dot(np.abs(reference_cdf / n - current_cdf / m), gaps))
    return distance_value / max(reference_std, STD_FLOOR)


def _shares(reference: dict[Any, int], current: dict[Any, int]) -> tuple[list[Any], np.ndarray, np.ndarray]:
    keys = list(reference.keys() | current.keys())
    ref = np.array([reference.get(k, 0) for k in keys], dtype=float)
    cur = np.array([current.get(k, 0) for k in keys], dtype=float)
    return keys, ref, cur


def jensen_shannon(reference: dict[Any, int], current: dict[Any, int]) -> float:
    _, ref, cur = _shares(reference, current)
    return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))


def chi_square(reference: dict[Any, int], current: dict[Any, int]) -> float:
    _, ref, cur = _shares(reference, current)
    expected = ref * (cur.sum() / ref.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(cur, expected)[1])


def z_test(reference: dict[Any, int], current: dict[Any, int]) -> float:
    """Two-proportion Z-test on "not the first value (sorted)" as Evidently computes it."""
    keys = sorted(reference.keys() | current.keys())
    if len(reference) == 1 and len(current) == 1 and keys == list(reference) == list(current):
        return 1.0
    n1, n2 = sum(reference.values()), sum(current.values())
    p1 = (n1 - reference.get(keys[0], 0)) / n1
    p2 = (n2 - current.get(keys[0], 0)) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _numeric_counts(values: np.ndarray) -> dict[Any, int]:
    uniques, counts = np.unique(values, return_counts=True)
    return {_plain(u): int(c) for u, c in zip(uniques, counts, strict=True)}


def compare_column(reference: ColumnReference, current: pd.Series) -> ColumnDrift:
    """One column's verdict, with Evidently's default method for it."""
    if reference.kind == NUMERICAL:
        cur_values = np.sort(clean_numeric(current))
        current_rows = int(cur_values.size)
    else:
        cur_counts = category_counts(current)
        current_rows = sum(cur_counts.values())
    if current_rows == 0:
        return _result(reference, ALL_MISSING, 1.0, current_rows)
    if reference.kind == NUMERICAL:
        ref_unique = reference.n_unique
        n_values = ref_unique if ref_unique > FEW_VALUES else len(np.union1d(
            np.unique(reference.sorted_values), np.unique(cur_values)))
        method = choose_method(reference.rows, NUMERICAL, n_values)
        if method is KS:
            score = float(stats.ks_2samp(reference.sorted_values, cur_values)[1])
        elif method is WASSERSTEIN:
            score = wasserstein_normed(reference.sorted_values, reference.std, cur_values)
        else:
            score = _categorical_score(method, _numeric_counts(reference.sorted_values), _numeric_counts(cur_values))
        return _result(reference, method, score, current_rows)
    n_values = len(reference.categories.keys() | cur_counts.keys())
    method = choose_method(reference.rows, CATEGORICAL, n_values)
    return _result(reference, method, _categorical_score(method, reference.categories, cur_counts), current_rows)


def _categorical_score(method: Method, reference: dict[Any, int], current: dict[Any, int]) -> float:
    if method is JENSEN_SHANNON:
        return jensen_shannon(reference, current)
    if method is CHI_SQUARE:
        return chi_square(reference, current)
    return z_test(reference, current)


def _result(reference: ColumnReference, method: Method, score: float, current_rows: int) -> ColumnDrift:
    return ColumnDrift(column=str(reference.name), kind=reference.kind, method=method.name, method_label=method.label,
                       threshold=method.threshold, score=score, drifted=method.drifted(score),
                       reference_rows=reference.rows, current_rows=current_rows)


def references_for(frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> dict[str, ColumnReference]:
    """Reference side of every comparable column (types inferred when not given)."""
    kinds = kinds or {c: k for c in frame.columns if (k := column_type(frame[c])) is not None}
    return {c: column_reference(frame[c], k) for c, k in kinds.items() if c in frame.columns}


def compare(references: dict[str, ColumnReference], current: pd.DataFrame) -> DatasetDrift:
    """Every reference column against the current frame (a column absent from it counts as all missing)."""
    columns = []
    for name, reference in references.items():
        if reference.rows == 0:
            continue  # nothing to compare against: Evidently refuses such a column too
        series = current[name] if name in current.columns else pd.Series([], dtype=object, name=name)
        columns.append(compare_column(reference, series))
    return DatasetDrift(columns)


def dataset_drift(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str] | None = None) -> DatasetDrift:
    """Profile and compare in one call (tests, benchmarks, uploaded reference files)."""
    return compare(references_for(reference, kinds), current)

"""The drift engine: Evidently's default methods and verdicts, on data with known shifts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring import drift


def _frames(rows_ref: int, rows_cur: int, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(rows: int, *, shift: float, new_category: bool, skew: float) -> pd.DataFrame:
        plans = ["basic", "plus", "pro"] + (["enterprise"] if new_category else [])
        return pd.DataFrame({
            "stable": rng.normal(size=rows),
            "shifted": rng.normal(shift, size=rows),
            "charges": rng.gamma(2.0, 30.0, rows).round(2),
            "plan": rng.choice(plans, rows),
            "region": rng.choice(["north", "south"], rows, p=[0.5 + skew, 0.5 - skew]),
            "seats": rng.integers(1, 5, rows),
            "level": rng.integers(0, 4, rows).astype(float),
            "flag": rng.integers(0, 2, rows).astype(float),
        })

    return (frame(rows_ref, shift=0.0, new_category=False, skew=0.0),
            frame(rows_cur, shift=0.6, new_category=True, skew=0.2))


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> tuple[dict[str, Any], dict]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k == drift.NUMERICAL],
                                categorical_columns=[c for c, k in kinds.items() if k == drift.CATEGORICAL])
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                               Dataset.from_pandas(reference, data_definition=definition)).dict()
    count = snapshot["metrics"][0]["value"]
    columns = {m["config"]["column"]: (m["config"]["method"], m["config"]["threshold"], m["value"])
               for m in snapshot["metrics"][1:]}
    return count, columns


LABEL_RULES = {m.label: m for m in (drift.KS, drift.CHI_SQUARE, drift.Z_TEST, drift.WASSERSTEIN,
                                    drift.JENSEN_SHANNON)}


@pytest.mark.parametrize(("rows_ref", "rows_cur"), [(800, 500), (5000, 4000)])
def test_it_matches_evidently_data_drift_preset(rows_ref: int, rows_cur: int) -> None:
    reference, current = _frames(rows_ref, rows_cur)
    current.loc[current.index[::3], "charges"] = np.nan  # missing values are dropped first, as Evidently does
    kinds = {c: drift.column_type(reference[c]) for c in reference.columns}
    ours = drift.dataset_drift(reference, current, kinds)
    count, theirs = _evidently(reference, current, kinds)
    for column in ours.columns:
        label, threshold, score = theirs[column.column]
        assert column.method_label == label, column.column
        assert column.threshold == threshold
        assert column.score == pytest.approx(score, rel=1e-9, abs=1e-12), column.column
        assert column.drifted == LABEL_RULES[label].drifted(score), column.column
    assert ours.drifted_count == count["count"]
    assert ours.share == pytest.approx(count["share"])
    assert 0 < ours.drifted_count < len(ours.columns)  # the data really has both verdicts


def test_it_flags_a_shifted_numeric_column() -> None:
    reference, current = _frames(5000, 5000)
    result = {c.column: c for c in drift.dataset_drift(reference, current).columns}
    assert result["shifted"].method == "wasserstein" and result["shifted"].drifted
    assert result["stable"].method == "wasserstein" and not result["stable"].drifted


def test_it_flags_a_new_category() -> None:
    reference, current = _frames(5000, 5000)
    plan = drift.dataset_drift(reference, current).columns[3]
    assert (plan.column, plan.method, plan.drifted) == ("plan", "jensenshannon", True)


def test_it_flags_a_column_going_missing() -> None:
    reference, current = _frames(5000, 5000)
    current["stable"] = np.nan
    result = {c.column: c for c in drift.dataset_drift(reference, current).columns}
    assert result["stable"].method == "all_missing" and result["stable"].drifted
    assert result["stable"].current_rows == 0


def test_it_counts_a_column_absent_from_current_data_as_missing() -> None:
    reference, current = _frames(5000, 5000)
    result = drift.dataset_drift(reference, current.drop(columns=["plan"]))
    assert [c.method for c in result.columns if c.column == "plan"] == ["all_missing"]


@pytest.mark.parametrize(("rows", "kind", "values", "method"), [
    (1000, drift.NUMERICAL, 6, "ks"), (1000, drift.NUMERICAL, 5, "chisquare"), (1000, drift.NUMERICAL, 2, "z"),
    (1000, drift.CATEGORICAL, 3, "chisquare"), (1000, drift.CATEGORICAL, 2, "z"),
    (1001, drift.NUMERICAL, 6, "wasserstein"), (1001, drift.NUMERICAL, 5, "jensenshannon"),
    (1001, drift.CATEGORICAL, 40, "jensenshannon"),
])
def test_it_picks_evidentlys_default_method(rows: int, kind: str, values: int, method: str) -> None:
    assert drift.choose_method(rows, kind, values).name == method


@pytest.mark.parametrize("rows_cur", [2000, 3000])
def test_it_computes_wasserstein_exactly_as_scipy_with_ties(rows_cur: int) -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.integers(0, 50, 3000).astype(float), rng.normal(25, 9, rows_cur).round(0)
    ours = drift.wasserstein_normed(np.sort(reference), float(np.std(reference)), np.sort(current))
    assert ours == pytest.approx(stats.wasserstein_distance(reference, current) / np.std(reference), rel=1e-12)


def test_it_types_columns_like_evidently() -> None:
    frame = pd.DataFrame({"f": [0.5] * 20, "few": list(range(10)) * 2, "many": list(range(20)),
                          "s": ["a"] * 20, "b": [True, False] * 10, "empty": [None] * 20})
    assert {c: drift.column_type(frame[c]) for c in frame.columns} == {
        "f": "numerical", "few": "categorical", "many": "numerical", "s": "categorical", "b": "categorical",
        "empty": None}

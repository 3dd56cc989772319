"""Drift on 100,000 reference x 100,000 current rows x 20 columns: OpsPortal's engine vs Evidently's
`DataDriftPreset`, in the same process on the same frames (target: at least 20x faster, identical verdicts).

The frames: 14 float columns (normal, log-normal, uniform, integer-valued, a few shifted) and 6
categorical ones (strings, a new category, a skewed share, a low-cardinality integer), seeded.
Both sides get the same column types (Evidently through an explicit DataDefinition). Per round:
OpsPortal's full path (build the reference profile from the raw frame, then compare) and the
compare-only path (the profile is computed once per version at registration, so this is what a
monitoring run pays), then Evidently's `Report([DataDriftPreset()]).run(...)` (import time excluded).
Checked every round: per-column verdicts identical, statistics within 1e-9 relative, drifted count
equal to Evidently's `DriftedColumnsCount`.

Run alone: `.venv/bin/python -m benchmarks.drift` (or through `benchmarks/run --only drift` once listed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

NAME = "drift"
TITLE = "Drift: OpsPortal's engine vs Evidently DataDriftPreset, 100k x 100k x 20 columns"
TARGET_RATIO = 20.0
TOLERANCE = 1e-9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("drift")
    group.add_argument("--drift-rows", type=int, default=100_000, help="rows of reference and of current (100,000)")
    group.add_argument("--drift-current-rows", type=int, default=None,
                       help="rows of current data when it should differ from the reference (default: the same)")
    group.add_argument("--drift-rounds", type=int, default=3, help="timed rounds per side (3)")


def frames(rows: int, seed: int = 42, current_rows: int | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)

    def build(shifted: bool) -> pd.DataFrame:
        rows = (current_rows or reference_rows) if shifted else reference_rows
        s = 1.0 if shifted else 0.0
        data: dict[str, Any] = {}
        for i in range(5):
            data[f"normal_{i}"] = rng.normal(0.3 * s * (i % 2), 1.0, rows)
        for i in range(3):
            data[f"lognormal_{i}"] = rng.lognormal(0.0 + 0.1 * s * i, 0.8, rows)
        for i in range(3):
            data[f"uniform_{i}"] = rng.uniform(0, 100 + 20 * s * (i == 0), rows)
        for i in range(3):
            data[f"count_{i}"] = rng.poisson(20 + 3 * s * (i == 2), rows).astype(float)
        plans = ["basic", "plus", "pro"] + (["enterprise"] if shifted else [])
        data["plan"] = rng.choice(plans, rows)
        data["region"] = rng.choice(["north", "south", "east", "west"], rows,
                                    p=[0.4, 0.3, 0.2, 0.1] if shifted else [0.25] * 4)
        data["channel"] = rng.choice(["web", "app", "store"], rows)
        data["country"] = rng.choice([f"c{i:02d}" for i in range(40)], rows)
        data["segment"] = rng.choice(["a", "b"], rows, p=[0.5, 0.5])
        data["seats"] = rng.integers(1, 6, rows)
        return pd.DataFrame(data)

    reference_rows = rows
    reference, current = build(False), build(True)
    kinds = {c: ("numerical" if reference[c].dtype == float else "categorical") for c in reference.columns}
    return reference, current, kinds


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k == "numerical"],
                                categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                               Dataset.from_pandas(reference, data_definition=definition)).dict()
    return {"count": snapshot["metrics"][0]["value"]["count"],
            "columns": {m["config"]["column"]: (m["config"]["method"], m["value"]) for m in snapshot["metrics"][1:]}}


def _check(ours: Any, theirs: dict[str, Any]) -> dict[str, Any]:
    from monitoring import drift

    rules = {m.label: m for m in drift.METHODS.values()}
    mismatched, worst = [], 0.0
    for column in ours.columns:
        label, score = theirs["columns"][column.column]
        if label != column.method_label or rules[label].drifted(score) != column.drifted:
            mismatched.append(column.column)
        worst = max(worst, abs(column.score - score) / max(abs(score), 1e-12))
    return {"identical_verdicts": not mismatched and ours.drifted_count == theirs["count"],
            "mismatched": mismatched, "max_relative_difference": worst}


def _timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.common import Table, log
    from monitoring import drift

    reference, current, kinds = frames(args.drift_rows, current_rows=args.drift_current_rows)
    log(f"drift: {len(reference):,} x {len(current):,} rows x {len(kinds)} columns; importing Evidently")
    import_seconds, _ = _timed(lambda: __import__("evidently.presets"))
    full, compare_only, evidently, checks = [], [], [], []
    for round_number in range(args.drift_rounds):
        seconds, references = _timed(lambda: drift.references_for(reference, kinds))
        compare_seconds, ours = _timed(lambda found=references: drift.compare(found, current))
        full.append(seconds + compare_seconds)
        compare_only.append(compare_seconds)
        their_seconds, theirs = _timed(lambda: _evidently(reference, current, kinds))
        evidently.append(their_seconds)
        checks.append(_check(ours, theirs))
        log(f"drift round {round_number + 1}: OpsPortal {full[-1]:.3f} s (compare {compare_seconds:.3f} s), "
            f"Evidently {their_seconds:.2f} s, verdicts identical: {checks[-1]['identical_verdicts']}")
    best_full, best_compare, best_evidently = min(full), min(compare_only), min(evidently)
    ratio_full, ratio_compare = best_evidently / best_full, best_evidently / best_compare
    identical = all(c["identical_verdicts"] for c in checks)
    worst = max(c["max_relative_difference"] for c in checks)
    drifted = ours.drifted_count
    rows = [["Evidently DataDriftPreset", best_evidently, statistics.median(evidently), 1.0],
            ["OpsPortal, profile + compare", best_full, statistics.median(full), ratio_full],
            ["OpsPortal, compare with a stored profile", best_compare, statistics.median(compare_only),
             ratio_compare]]
    notes = [f"{drifted} of {len(kinds)} columns drifted on both sides; largest relative difference of a "
             f"statistic: {worst:.1e}; Evidently import {import_seconds:.1f} s (not timed above)."]
    tables = [
        Table(TITLE, ["side", "best s", "median s", "speed-up"], rows, notes),
        Table("Targets (from the issue)", ["figure", "measured", "target", "result"], [
            ["speed-up, profile + compare", f"{ratio_full:.1f}x", f">= {TARGET_RATIO:.0f}x",
             "PASS" if ratio_full >= TARGET_RATIO else "FAIL"],
            ["identical verdicts", "yes" if identical else "no", "yes", "PASS" if identical else "FAIL"]]),
    ]
    return {
        "name": NAME, "title": TITLE,
        "figures": {"ratio_full": ratio_full, "ratio_compare_only": ratio_compare, "evidently_seconds": evidently,
                    "opsportal_seconds": full, "opsportal_compare_seconds": compare_only,
                    "identical_verdicts": identical, "max_relative_difference": worst, "drifted_columns": drifted},
        "targets": [{"figure": "ratio_full", "measured": ratio_full, "target": f">= {TARGET_RATIO}",
                     "passed": ratio_full >= TARGET_RATIO and identical}],
        "tables": tables,
        "config": {"rows": args.drift_rows, "current_rows": len(current), "columns": len(kinds),
                   "rounds": args.drift_rounds},
    }


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    import django

    django.setup()
    from benchmarks.common import render_table

    parser = argparse.ArgumentParser(description=TITLE)
    add_arguments(parser)
    result = run(parser.parse_args())
    for table in result["tables"]:
        print(render_table(table), end="\n\n")
    return 0 if all(t["passed"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())

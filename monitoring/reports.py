"""Evidently renders the human-readable report of a run; OpsPortal's own engine decides the verdicts.

Evidently 0.7 writes column names and values raw inside `<script>`, so a category
such as `</script><script>…` becomes live script in the file. The file is
therefore never shown with the portal's origin: it is served with
`Content-Security-Policy: sandbox allow-scripts` (an opaque origin, no cookies,
no same-origin API calls) and `X-Content-Type-Options: nosniff`, and framed with
`<iframe sandbox="allow-scripts">` (never `allow-same-origin`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from django.conf import settings

from monitoring import drift
from registry import artifacts

# The headers every report response carries (tests assert them).
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "private, no-store",
}
IFRAME_SANDBOX = "allow-scripts"


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=0)


def render(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> Path:
    """Evidently's DataDriftPreset + DataSummaryPreset as one HTML file (in a temporary folder the caller owns)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    columns = [c for c in kinds if c in reference.columns and c in current.columns]
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == drift.NUMERICAL],
        categorical_columns=[c for c in columns if kinds[c] == drift.CATEGORICAL],
    )
    rows = settings.MONITORING_REPORT_ROWS
    snapshot = Report([DataDriftPreset(), DataSummaryPreset()]).run(
        Dataset.from_pandas(_sample(current[columns], rows), data_definition=definition),
        Dataset.from_pandas(_sample(reference[columns], rows), data_definition=definition),
    )
    path = Path(tempfile.mkdtemp(prefix="opsportal-report-")) / "report.html"
    snapshot.save_html(str(path))
    return path


def store(path: Path) -> artifacts.Blob:
    return artifacts.blob_put(path, "monitoring-reports")

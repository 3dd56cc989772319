"""The Prometheus text exposition of monitoring's key gauges (format 0.0.4), built from the latest run
of each model version in the last 30 days and the open alerts."""

from __future__ import annotations

from typing import Any

from monitoring import selectors

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GAUGES = [
    ("opsportal_drift_share", "Share of features drifted in the latest monitoring run.",
     lambda r: r["drift_share"]),
    ("opsportal_dataset_drift", "1 when the latest run found dataset drift (at least half the features).",
     lambda r: None if r["dataset_drift"] is None else float(r["dataset_drift"])),
    ("opsportal_prediction_drift", "1 when the model's predictions drifted in the latest run.",
     lambda r: float(r["prediction_drift"]["drifted"]) if r["prediction_drift"] else None),
    ("opsportal_rows_monitored", "Rows of current data in the latest run.", lambda r: r["rows_current"]),
    ("opsportal_requests", "Requests logged in the latest run's window.", lambda r: r["service"].get("volume")),
    ("opsportal_error_rate", "Failed predictions / all, in the latest run's window.",
     lambda r: r["service"].get("error_rate")),
    ("opsportal_latency_p50_ms", "Median latency in the latest run's window.",
     lambda r: r["service"].get("latency_p50_ms")),
    ("opsportal_latency_p95_ms", "95th percentile latency in the latest run's window.",
     lambda r: r["service"].get("latency_p95_ms")),
    ("opsportal_latency_p99_ms", "99th percentile latency in the latest run's window.",
     lambda r: r["service"].get("latency_p99_ms")),
    ("opsportal_last_run_timestamp_seconds", "When the latest run was created.",
     lambda r: r["created_at"].timestamp()),
]
PERFORMANCE = ("auc", "accuracy", "f1", "log_loss", "mae", "rmse", "r2")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: Any) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def exposition() -> str:
    rows = selectors.prometheus_rows()
    lines: list[str] = []
    for name, help_text, value_of in GAUGES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for row in rows:
            value = value_of(row)
            if value is not None:
                lines.append(f"{name}{_labels(model=row['model__name'], version=row['version__number'])} {value:g}")
    lines += ["# HELP opsportal_model_performance Realized (from labels) and estimated performance, latest run.",
              "# TYPE opsportal_model_performance gauge"]
    for row in rows:
        for source, figures in (("realized", row["performance"].get("overall", {})),
                                ("estimated", row["estimated_performance"])):
            for metric in PERFORMANCE:
                if isinstance(figures.get(metric), (int, float)):
                    labels = _labels(model=row["model__name"], version=row["version__number"], metric=metric,
                                     source=source)
                    lines.append(f"opsportal_model_performance{labels} {figures[metric]:g}")
    lines += ["# HELP opsportal_open_alerts Alerts not yet resolved.", "# TYPE opsportal_open_alerts gauge"]
    for model, severity, count in selectors.open_alert_counts():
        lines.append(f"opsportal_open_alerts{_labels(model=model, severity=severity)} {count}")
    return "\n".join(lines) + "\n"

"""Plotly figure specs for the model health page, built from `selectors.series` (drawn by static/js/charts.js)."""

from __future__ import annotations

from typing import Any

MAX_HEATMAP_FEATURES = 40
LAYOUT = {"margin": {"l": 60, "r": 20, "t": 30, "b": 40}, "height": 320, "legend": {"orientation": "h"}}


def _when(runs: list[dict[str, Any]]) -> list[str]:
    return [r["created_at"].isoformat() for r in runs]


def drift_heatmap(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Drifted (1) or not (0) per feature and run; hover shows the score and method."""
    columns = sorted({c for r in runs for c in r["features"]})[:MAX_HEATMAP_FEATURES]
    if not columns:
        return None
    z = [[(1 if r["features"][c]["drifted"] else 0) if c in r["features"] else None for r in runs] for c in columns]
    text = [[_hover(r["features"].get(c)) for r in runs] for c in columns]
    return {"data": [{"type": "heatmap", "x": _when(runs), "y": columns, "z": z, "text": text,
                      "hoverinfo": "x+y+text", "zmin": 0, "zmax": 1, "showscale": False,
                      "colorscale": [[0, "#d1e7dd"], [1, "#dc3545"]]}],
            "layout": {**LAYOUT, "height": max(220, 28 * len(columns) + 80), "title": {"text": "Drift per feature"}}}


def _hover(found: dict[str, Any] | None) -> str:
    if not found:
        return "not compared"
    score = "n/a" if found["score"] is None else f"{found['score']:.4g}"
    return f"{found['method']}: {score} ({'drift' if found['drifted'] else 'no drift'})"


def prediction_distribution(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    points = [(r, r["prediction_drift"]) for r in runs if r["prediction_drift"]]
    if not points:
        return None
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": "prediction drift score",
                      "x": [p[0]["created_at"].isoformat() for p in points], "y": [p[1]["score"] for p in points],
                      "marker": {"color": ["#dc3545" if p[1]["drifted"] else "#198754" for p in points]}}],
            "layout": {**LAYOUT, "title": {"text": "Prediction drift (score per run)"}}}


def performance(runs: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    realized = [(r, r["performance"].get("overall", {}).get(metric)) for r in runs]
    estimated = [(r, r["estimated_performance"].get(metric)) for r in runs]
    data = [{"type": "scatter", "mode": "lines+markers", "name": f"{metric} (realized, from labels)",
             "x": [r["created_at"].isoformat() for r, v in realized if v is not None],
             "y": [v for _, v in realized if v is not None]},
            {"type": "scatter", "mode": "lines", "line": {"dash": "dot"}, "name": f"{metric} (estimated)",
             "x": [r["created_at"].isoformat() for r, v in estimated if v is not None],
             "y": [v for _, v in estimated if v is not None]}]
    if not any(trace["y"] for trace in data):
        return None
    return {"data": data, "layout": {**LAYOUT, "title": {"text": f"Performance: {metric}"}}}


def service(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    with_traffic = [r for r in runs if r["service"]]
    if not with_traffic:
        return None
    x = _when(with_traffic)
    data = [{"type": "scatter", "mode": "lines", "name": f"p{p} latency (ms)", "x": x,
             "y": [r["service"].get(f"latency_p{p}_ms") for r in with_traffic]} for p in (50, 95, 99)]
    data.append({"type": "bar", "name": "error rate", "x": x, "yaxis": "y2", "opacity": 0.4,
                 "y": [r["service"].get("error_rate") for r in with_traffic]})
    layout = {**LAYOUT, "title": {"text": "Latency and errors"},
              "yaxis2": {"overlaying": "y", "side": "right", "rangemode": "tozero", "tickformat": ".0%"}}
    return {"data": data, "layout": layout}

"""Plotly figure specs ({data, layout}) for the campaign pages, built from a cached analysis result.
static/js/charts.js draws them with the vendored plotly.js."""

from __future__ import annotations

from typing import Any

COLOURS = ["#0d6efd", "#198754", "#fd7e14", "#6f42c1", "#d63384", "#20c997"]
HOLDOUT_COLOUR = "#6c757d"
CONFIG = {"displaylogo": False, "responsive": True}


def _scale(kpi: dict[str, Any]) -> float:
    """Rates are shown in percent."""
    return 100.0 if kpi["kind"] == "binary" else 1.0


def _unit(kpi: dict[str, Any]) -> str:
    return "%" if kpi["kind"] == "binary" else ""


def _error(values: list[float | None], lows: list[float | None], highs: list[float | None],
           scale: float) -> dict[str, Any]:
    plus = [(h - v) * scale if h is not None and v is not None else None for v, h in zip(values, highs, strict=True)]
    minus = [(v - lo) * scale if lo is not None and v is not None else None for v, lo in zip(values, lows, strict=True)]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


def kpi_groups_figure(kpi: dict[str, Any]) -> dict[str, Any]:
    """The KPI per group with its 95% interval."""
    scale, groups = _scale(kpi), kpi["groups"]
    means = [g["mean"] for g in groups]
    return {"data": [{
        "type": "bar", "x": [g["arm"] for g in groups], "y": [m * scale if m is not None else None for m in means],
        "marker": {"color": [HOLDOUT_COLOUR if g["is_holdout"] else COLOURS[i % len(COLOURS)]
                             for i, g in enumerate(groups)]},
        "error_y": _error(means, [g["low"] for g in groups], [g["high"] for g in groups], scale),
        "hovertemplate": "%{x}: %{y:.2f}" + _unit(kpi) + "<extra></extra>"}],
        "layout": {"title": {"text": f"{kpi['title']} per group (95% CI)"}, "height": 300,
                   "margin": {"t": 40, "b": 40, "l": 50, "r": 10},
                   "yaxis": {"title": {"text": "rate (%)" if kpi["kind"] == "binary" else "mean"}}},
        "config": CONFIG}


def timeline_figure(kpi: dict[str, Any]) -> dict[str, Any]:
    """Cumulative incremental outcome (in the good direction) per treatment arm, by day."""
    points = kpi["timeline"]
    arms = sorted({arm for p in points for arm in p["arms"]})
    data = [{"type": "scatter", "mode": "lines+markers", "name": arm, "x": [p["day"] for p in points],
             "y": [p["arms"].get(arm) for p in points], "line": {"color": COLOURS[i % len(COLOURS)]}}
            for i, arm in enumerate(arms)]
    return {"data": data, "layout": {
        "title": {"text": f"Cumulative incremental {kpi['title']} (good direction)"}, "height": 300,
        "margin": {"t": 40, "b": 40, "l": 50, "r": 10}, "yaxis": {"title": {"text": "entities" if
                                                                             kpi["kind"] == "binary" else "total"}}},
        "config": CONFIG}


def deciles_figure(kpi: dict[str, Any]) -> dict[str, Any]:
    """Uplift of each arm against the holdout, per score decile (1 = highest scores)."""
    scale, deciles = _scale(kpi), kpi["deciles"]
    arms = [a["arm"] for a in deciles[0]["arms"]] if deciles else []
    data = []
    for i, arm in enumerate(arms):
        cells = [next(a for a in d["arms"] if a["arm"] == arm) for d in deciles]
        diffs = [c["diff"] for c in cells]
        data.append({"type": "bar", "name": arm, "x": [f"D{d['decile']}" for d in deciles],
                     "y": [v * scale if v is not None else None for v in diffs],
                     "error_y": _error(diffs, [c["low"] for c in cells], [c["high"] for c in cells], scale),
                     "marker": {"color": COLOURS[i % len(COLOURS)]}})
    return {"data": data, "layout": {
        "title": {"text": f"Uplift in {kpi['title']} by score decile (95% CI)"}, "height": 300, "barmode": "group",
        "margin": {"t": 40, "b": 40, "l": 50, "r": 10},
        "yaxis": {"title": {"text": "points" if kpi["kind"] == "binary" else "difference of means"}}},
        "config": CONFIG}


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """Per KPI name: its group chart; for the primary KPI also the timeline and decile charts."""
    found: dict[str, Any] = {"groups": {k["name"]: kpi_groups_figure(k) for k in result["kpis"]}}
    primary = next((k for k in result["kpis"] if k["is_primary"]), None)
    if primary is not None:
        found["timeline"] = timeline_figure(primary) if primary["timeline"] else None
        found["deciles"] = deciles_figure(primary) if primary["deciles"] else None
    return found


def versions_figure(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Primary-KPI uplift of each campaign, grouped by the model version that picked its audience."""
    judged = [r for r in rows if r.get("diff") is not None]
    if not judged:
        return None
    scale = 100.0 if judged[0]["kind"] == "binary" else 1.0
    return {"data": [{
        "type": "scatter", "mode": "markers", "x": [f"v{r['version']}" if r["version"] else "none" for r in judged],
        "y": [r["diff"] * scale for r in judged], "text": [f"{r['campaign'].name} · {r['arm']}" for r in judged],
        "error_y": _error([r["diff"] for r in judged], [r["low"] for r in judged], [r["high"] for r in judged], scale),
        "hovertemplate": "%{text}: %{y:.2f}<extra></extra>", "marker": {"size": 10}}],
        "layout": {"title": {"text": "Primary KPI uplift by model version (95% CI)"}, "height": 320,
                   "margin": {"t": 40, "b": 40, "l": 50, "r": 10}, "xaxis": {"type": "category"}},
        "config": CONFIG}

"""Automated promotion gates: each turns measurements into a pass/fail with the value it saw.

Data gates (metric thresholds, beats the champion, fairness) read an evaluation in
which the candidate and the champion were scored by the sandbox on the same rows;
the other gates read the database at the moment they are evaluated.
"""

from __future__ import annotations

from typing import Any

from monitoring.selectors import open_critical_alerts
from registry import selectors
from registry.models import ApprovalPolicy, ModelVersion, VersionStatus

GATE_LABELS = {
    "validation_passed": "Validation passed",
    "metric_thresholds": "Metric thresholds",
    "beats_champion": "Beats or matches the champion on the same rows",
    "signature_compatible": "Signature compatible with the champion",
    "no_critical_alerts": "No open critical alert on the model",
    "fairness": "Fairness gap within the limit",
    "model_card_complete": "Model card complete",
}
DATA_GATES = ("metric_thresholds", "beats_champion", "fairness")
# Primary comparison metric per task, and whether higher is better.
PRIMARY_METRIC = {"binary_classification": ("roc_auc", True), "multiclass_classification": ("accuracy", True),
                  "regression": ("rmse", False)}
MIN_GROUP_ROWS = 30


def result(gate: str, passed: bool, detail: str, measured: Any = None, threshold: Any = None) -> dict[str, Any]:
    return {"gate": gate, "label": GATE_LABELS[gate], "passed": passed, "detail": detail,
            "measured": measured, "threshold": threshold}


def validation_passed(version: ModelVersion, _: Any, __: Any, ___: Any) -> dict[str, Any]:
    ok = version.status == VersionStatus.READY
    return result("validation_passed", ok, "Validation passed." if ok else f"Status is {version.status}.",
                  measured=version.status, threshold="ready")


def metric_thresholds(version: ModelVersion, config: dict[str, Any], evaluation: dict[str, Any], _: Any) -> dict:
    measured = _metrics(evaluation, "candidate")
    if not config:
        return result("metric_thresholds", True, "No thresholds set in the policy.", measured=measured)
    misses = []
    for metric, bounds in config.items():
        value = measured.get(metric)
        if value is None:
            misses.append(f"{metric} was not measured")
        elif "min" in bounds and value < bounds["min"]:
            misses.append(f"{metric} {value:.4f} < {bounds['min']}")
        elif "max" in bounds and value > bounds["max"]:
            misses.append(f"{metric} {value:.4f} > {bounds['max']}")
    detail = "; ".join(misses) if misses else "Every threshold is met on the evaluation rows."
    return result("metric_thresholds", not misses, detail, measured=measured, threshold=config)


def beats_champion(version: ModelVersion, config: dict[str, Any], evaluation: dict[str, Any], champion: Any) -> dict:
    if champion is None or champion.pk == version.pk:
        return result("beats_champion", True, "There is no other champion to beat yet.")
    metric, higher_is_better = PRIMARY_METRIC[version.model.task]
    ours, theirs = _metrics(evaluation, "candidate").get(metric), _metrics(evaluation, "champion").get(metric)
    if ours is None or theirs is None:
        return result("beats_champion", False, f"{metric} could not be measured for both models.")
    tolerance = float(config.get("tolerance", 0.0))
    ok = ours >= theirs - tolerance if higher_is_better else ours <= theirs + tolerance
    verb = "≥" if higher_is_better else "≤"
    sign = "-" if higher_is_better else "+"
    detail = (f"{metric}: candidate {ours:.4f} vs champion v{champion.number} {theirs:.4f} "
              f"(needs {verb} champion {sign} {tolerance}) on {evaluation.get('rows')} rows.")
    return result("beats_champion", ok, detail, measured={"candidate": ours, "champion": theirs, "metric": metric},
                  threshold={"tolerance": tolerance})


def signature_compatible(version: ModelVersion, _: Any, __: Any, champion: Any) -> dict[str, Any]:
    if champion is None or champion.pk == version.pk:
        return result("signature_compatible", True, "There is no champion to be compatible with.")
    breaking = [row for row in selectors.signature_diff(champion, version) if row["breaking"]]
    detail = ("Breaking: " + "; ".join(f"{r['column']} {r['change']} ({r['detail']})" for r in breaking)
              if breaking else f"Every input of champion v{champion.number} is accepted with the same type.")
    return result("signature_compatible", not breaking, detail, measured=breaking)


def no_critical_alerts(version: ModelVersion, _: Any, __: Any, ___: Any) -> dict[str, Any]:
    titles = list(open_critical_alerts(version.model_id).values_list("title", flat=True)[:5])
    detail = f"Open critical alerts: {'; '.join(titles)}." if titles else "No open critical alert."
    return result("no_critical_alerts", not titles, detail, measured=len(titles), threshold=0)


def fairness(version: ModelVersion, config: dict[str, Any] | None, evaluation: dict[str, Any], _: Any) -> dict:
    if not config:
        return result("fairness", True, "No fairness check set in the policy.")
    metric, limit = config.get("metric", "positive_rate"), float(config["max_gap"])
    groups = (evaluation.get("results", {}).get("candidate") or {}).get("groups")
    if not groups:
        return result("fairness", False, f"Groups of {config['column']!r} could not be measured.", threshold=limit)
    rates = {g: v[metric] for g, v in groups.items() if v["rows"] >= MIN_GROUP_ROWS and v[metric] is not None}
    if len(rates) < 2:
        return result("fairness", True, f"Fewer than two groups of {config['column']!r} have {MIN_GROUP_ROWS}+ rows.",
                      measured=groups, threshold=limit)
    gap = max(rates.values()) - min(rates.values())
    detail = (f"{metric} by {config['column']}: " + ", ".join(f"{g} {r:.3f}" for g, r in sorted(rates.items()))
              + f"; gap {gap:.3f} (limit {limit}).")
    return result("fairness", gap <= limit, detail, measured={"gap": round(gap, 6), "groups": rates}, threshold=limit)


def model_card_complete(version: ModelVersion, fields: list[str], _: Any, __: Any) -> dict[str, Any]:
    missing = [f for f in fields or [] if not str(getattr(version, f, "") or "").strip()]
    detail = f"Missing: {', '.join(missing)}." if missing else "Every required model-card field is filled in."
    return result("model_card_complete", not missing, detail, measured=missing, threshold=fields)


CHECKS = {"validation_passed": validation_passed, "metric_thresholds": metric_thresholds,
          "beats_champion": beats_champion, "signature_compatible": signature_compatible,
          "no_critical_alerts": no_critical_alerts, "fairness": fairness, "model_card_complete": model_card_complete}


def _metrics(evaluation: dict[str, Any], key: str) -> dict[str, float]:
    return ((evaluation.get("results") or {}).get(key) or {}).get("metrics") or {}


def enabled(policy: ApprovalPolicy) -> dict[str, Any]:
    """The gates the policy turns on, with their configuration."""
    active = {}
    for gate, config in policy.gates.items():
        if gate == "validation_passed" or (config not in (None, False) and gate in CHECKS):
            active[gate] = {} if config is True else config
    active.setdefault("validation_passed", {})
    return active


def evaluate(version: ModelVersion, policy: ApprovalPolicy, evaluation: dict[str, Any], champion: Any) -> list[dict]:
    """Every enabled gate, in a stable order. An evaluation error fails the data gates with its reason."""
    results = []
    for gate, config in sorted(enabled(policy).items(), key=lambda item: list(GATE_LABELS).index(item[0])):
        if gate in DATA_GATES and evaluation.get("error"):
            results.append(result(gate, False, f"Not measured: {evaluation['error']}"))
            continue
        if gate == "beats_champion" and isinstance(config, dict) and config.get("enabled") is False:
            continue
        results.append(CHECKS[gate](version, config, evaluation, champion))
    return results

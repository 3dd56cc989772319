"""Campaign analysis, computed in the database: three GROUP BY queries, whatever the number of rows.

Steps of `campaign_analyse`:
1. audience sizes per arm and score decile (assignments);
2. per KPI, arm and decile: count, sum and sum of squares of the outcome values;
3. per KPI, arm and day: count and sum (the cumulative incremental outcome over time);
4. statistics on those aggregates (`feedback.stats`): rates or means with intervals,
   uplift of each treatment arm against the holdout with its 95% interval and p-value,
   the sample-ratio check, the minimum detectable effect while data is short, uplift
   per decile, incremental outcomes and money, and the model's hit rate in the holdout;
5. store the result (one row per campaign) and raise or clear the falling-uplift alert.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from feedback import stats
from feedback.models import Arm, Campaign, CampaignAnalysis, Direction, Kpi, KpiKind, Outcome
from feedback.stats import Group

VERDICT_BETTER = "better"
VERDICT_WORSE = "worse"
VERDICT_UNCLEAR = "unclear"
VERDICT_NOT_ENOUGH = "not_enough_data"
MIN_EVENTS = 10


# --- the queries ----------------------------------------------------------------------------------


def _audience(campaign: Campaign) -> dict[tuple[int, int | None], int]:
    rows = campaign.assignments.order_by().values("arm_id", "decile").annotate(n=Count("id"))
    return {(r["arm_id"], r["decile"]): r["n"] for r in rows}


def _outcome_sums(campaign: Campaign) -> dict[tuple[int, int, int | None], Group]:
    rows = (Outcome.objects.filter(campaign=campaign).order_by().values("kpi_id", "arm_id", "decile")
            .annotate(n=Count("id"), total=Sum("value"), squares=Sum(F("value") * F("value"))))
    return {(r["kpi_id"], r["arm_id"], r["decile"]): Group(r["n"], r["total"] or 0.0, r["squares"] or 0.0)
            for r in rows}


def _daily_sums(campaign: Campaign) -> list[dict[str, Any]]:
    return list(Outcome.objects.filter(campaign=campaign).order_by()
                .annotate(day=TruncDate("observed_at")).values("kpi_id", "arm_id", "day")
                .annotate(n=Count("id"), total=Sum("value")).order_by("day"))


# --- folding aggregates -----------------------------------------------------------------------------


def _add(a: Group, b: Group) -> Group:
    return Group(a.n + b.n, a.total + b.total, a.squares + b.squares)


def _group(sums: dict[tuple[int, int, int | None], Group], audience: dict[tuple[int, int | None], int], kpi: Kpi,
           arm: Arm, decile: Any = "all") -> Group:
    """One arm's aggregate for a KPI (all deciles, or one); with missing-as-zero the audience is the n."""
    found = Group(0, 0.0, 0.0)
    for (kpi_id, arm_id, d), group in sums.items():
        if kpi_id == kpi.pk and arm_id == arm.pk and (decile == "all" or d == decile):
            found = _add(found, group)
    if kpi.missing_as_zero:
        size = sum(n for (arm_id, d), n in audience.items() if arm_id == arm.pk and (decile == "all" or d == decile))
        found = Group(max(size, found.n), found.total, found.squares)
    return found


def _interval(group: Group, kind: str) -> tuple[float | None, float | None]:
    """The 95% interval of one group's rate (Wilson) or mean (t)."""
    if group.n == 0:
        return None, None
    if kind == KpiKind.BINARY:
        return stats.wilson(group.total, group.n)
    if group.variance is None:
        return None, None
    from scipy import stats as scipy_stats

    half = float(scipy_stats.t.ppf(0.975, group.n - 1)) * math.sqrt(group.variance / group.n)
    return group.mean - half, group.mean + half


def _compare(treated: Group, holdout: Group, kind: str) -> dict[str, Any] | None:
    return (stats.compare_rates if kind == KpiKind.BINARY else stats.compare_means)(treated, holdout)


def _enough(treated: Group, holdout: Group, kind: str) -> bool:
    minimum = settings.FEEDBACK_MIN_GROUP_SIZE
    if treated.n < minimum or holdout.n < minimum:
        return False
    return kind != KpiKind.BINARY or treated.total + holdout.total >= MIN_EVENTS


def _verdict(comparison: dict[str, Any] | None, enough: bool, direction: str) -> str:
    if comparison is None or not enough:
        return VERDICT_NOT_ENOUGH
    sign = 1 if direction == Direction.HIGHER else -1
    low, high = sorted((sign * comparison["low"], sign * comparison["high"]))
    if low > 0:
        return VERDICT_BETTER
    if high < 0:
        return VERDICT_WORSE
    return VERDICT_UNCLEAR


# --- plain words ------------------------------------------------------------------------------------


def _amount(value: float, kind: str) -> str:
    return f"{abs(value) * 100:.1f} points" if kind == KpiKind.BINARY else f"{abs(value):,.2f} per entity"


def _bound(value: float, kind: str) -> str:
    return f"{value * 100:.1f}" if kind == KpiKind.BINARY else f"{value:,.2f}"


def _summary(arm: str, kpi: Kpi, comparison: dict[str, Any] | None, verdict: str, mde: float | None,
             incremental: float | None, money: float | None) -> str:
    title = kpi.title
    if verdict == VERDICT_NOT_ENOUGH or comparison is None:
        detect = f" With the groups as they are, only a change of about {_amount(mde, kpi.kind)} or more " \
                 f"could be detected." if mde is not None else ""
        return f"Not enough data yet to tell whether {arm} changed {title}.{detect}"
    diff = comparison["diff"]
    verb = "raised" if diff > 0 else "lowered"
    interval = f"(95% CI {_bound(comparison['low'], kpi.kind)} to {_bound(comparison['high'], kpi.kind)})"
    if verdict == VERDICT_UNCLEAR:
        return f"No clear effect of {arm} on {title} yet: {verb} by {_amount(diff, kpi.kind)} {interval}, " \
               f"which could be chance."
    worth = ""
    if incremental is not None:
        unit = "more" if incremental >= 0 else "fewer"
        worth = f", about {abs(incremental):,.0f} {unit} in good outcomes" if kpi.kind == KpiKind.BINARY else \
            f", about {abs(incremental):,.0f} {unit} in total"
    if money is not None:
        worth += f", worth about {'-' if money < 0 else ''}{abs(money):,.0f}"
    warning = "" if verdict == VERDICT_BETTER else " This is the wrong direction."
    return f"{arm} {verb} {title} by {_amount(diff, kpi.kind)} {interval}{worth}.{warning}"


# --- per KPI ----------------------------------------------------------------------------------------


def _group_rows(kpi: Kpi, arms: list[Arm], sums: Any, audience: Any) -> list[dict[str, Any]]:
    rows = []
    for arm in arms:
        group = _group(sums, audience, kpi, arm)
        low, high = _interval(group, kpi.kind)
        rows.append({"arm": arm.name, "is_holdout": arm.is_holdout, "n": group.n, "mean": group.mean,
                     "low": low, "high": high, "total": group.total})
    return rows


def _comparison(kpi: Kpi, arm: Arm, holdout: Arm, sums: Any, audience: Any) -> dict[str, Any]:
    treated, control = _group(sums, audience, kpi, arm), _group(sums, audience, kpi, holdout)
    compared = _compare(treated, control, kpi.kind)
    enough = _enough(treated, control, kpi.kind)
    verdict = _verdict(compared, enough, kpi.direction)
    sign = 1 if kpi.direction == Direction.HIGHER else -1
    incremental = sign * compared["diff"] * treated.n if compared else None
    money = incremental * float(kpi.value_per_unit) if incremental is not None and kpi.value_per_unit else None
    mde = stats.minimum_detectable_effect(treated, control, binary=kpi.kind == KpiKind.BINARY)
    return {"arm": arm.name, "n_treated": treated.n, "n_holdout": control.n, "enough": enough, "verdict": verdict,
            "mde": mde, "incremental": incremental, "money": money, **(compared or {}),
            "summary": _summary(arm.name, kpi, compared, verdict, mde, incremental, money)}


def _deciles(kpi: Kpi, arms: list[Arm], holdout: Arm, sums: Any, audience: Any) -> list[dict[str, Any]]:
    deciles = sorted({d for (_, _, d) in sums if d is not None} | {d for (_, d) in audience if d is not None})
    rows = []
    for decile in deciles:
        control = _group(sums, audience, kpi, holdout, decile)
        entry: dict[str, Any] = {"decile": decile, "holdout_n": control.n, "holdout_mean": control.mean, "arms": []}
        for arm in arms:
            treated = _group(sums, audience, kpi, arm, decile)
            compared = _compare(treated, control, kpi.kind) or {}
            entry["arms"].append({"arm": arm.name, "n": treated.n, "mean": treated.mean,
                                  "diff": compared.get("diff"), "low": compared.get("low"),
                                  "high": compared.get("high")})
        rows.append(entry)
    return rows


def _timeline(kpi: Kpi, arms: list[Arm], holdout: Arm, daily: list[dict[str, Any]],
              audience: dict[tuple[int, int | None], int]) -> list[dict[str, Any]]:
    """Cumulative incremental outcome of each arm, day by day (in the KPI's good direction)."""
    sign = 1 if kpi.direction == Direction.HIGHER else -1
    sizes = defaultdict(int)
    for (arm_id, _), n in audience.items():
        sizes[arm_id] += n
    running: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
    points = []
    days = sorted({r["day"] for r in daily if r["kpi_id"] == kpi.pk})
    by_day = defaultdict(list)
    for row in daily:
        if row["kpi_id"] == kpi.pk:
            by_day[row["day"]].append(row)
    for day in days:
        for row in by_day[day]:
            running[row["arm_id"]][0] += row["n"]
            running[row["arm_id"]][1] += row["total"] or 0.0
        point: dict[str, Any] = {"day": day.isoformat(), "arms": {}}
        base_n = sizes[holdout.pk] if kpi.missing_as_zero else running[holdout.pk][0]
        for arm in arms:
            n = sizes[arm.pk] if kpi.missing_as_zero else running[arm.pk][0]
            if n and base_n:
                lift = running[arm.pk][1] / n - running[holdout.pk][1] / base_n
                point["arms"][arm.name] = sign * lift * n
        points.append(point)
    return points


def _kpi_result(kpi: Kpi, arms: list[Arm], holdout: Arm, sums: Any, audience: Any,
                daily: list[dict[str, Any]]) -> dict[str, Any]:
    comparisons = [_comparison(kpi, arm, holdout, sums, audience) for arm in arms]
    return {"name": kpi.name, "title": kpi.title, "kind": kpi.kind, "direction": kpi.direction,
            "value_per_unit": float(kpi.value_per_unit) if kpi.value_per_unit is not None else None,
            "is_primary": kpi.is_primary, "missing_as_zero": kpi.missing_as_zero,
            "enough": all(c["enough"] for c in comparisons),
            "groups": _group_rows(kpi, [holdout, *arms], sums, audience), "comparisons": comparisons,
            "deciles": _deciles(kpi, arms, holdout, sums, audience),
            "timeline": _timeline(kpi, arms, holdout, daily, audience)}


# --- the whole campaign -----------------------------------------------------------------------------


def _srm(arms: list[Arm], audience: dict[tuple[int, int | None], int]) -> dict[str, Any]:
    observed = [sum(n for (arm_id, _), n in audience.items() if arm_id == arm.pk) for arm in arms]
    check = stats.sample_ratio_check(observed, [arm.share for arm in arms])
    check["groups"] = [{"arm": arm.name, "observed": n, "planned_share": arm.share,
                        "observed_share": n / sum(observed) if sum(observed) else None}
                       for arm, n in zip(arms, observed, strict=True)]
    return check


def _hit_rate(primary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Of the holdout (flagged by the model, left untouched), how many did what the model predicted."""
    if primary is None or primary["kind"] != KpiKind.BINARY:
        return None
    holdout = next(g for g in primary["groups"] if g["is_holdout"])
    if not holdout["n"]:
        return None
    by_decile = [{"decile": d["decile"], "n": d["holdout_n"], "rate": d["holdout_mean"]} for d in primary["deciles"]]
    return {"kpi": primary["title"], "flagged": holdout["n"], "hits": round(holdout["total"]),
            "rate": holdout["mean"], "low": holdout["low"], "high": holdout["high"], "by_decile": by_decile}


def _headline(primary: dict[str, Any] | None) -> str:
    if primary is None or not primary["comparisons"]:
        return "No outcomes yet: upload them to see whether the action worked."
    return " ".join(c["summary"] for c in primary["comparisons"])


def analysis_compute(campaign: Campaign) -> dict[str, Any]:
    all_arms = list(campaign.arms.all())
    holdout = next(a for a in all_arms if a.is_holdout)
    arms = [a for a in all_arms if not a.is_holdout]
    audience, sums, daily = _audience(campaign), _outcome_sums(campaign), _daily_sums(campaign)
    kpis = [_kpi_result(kpi, arms, holdout, sums, audience, daily) for kpi in campaign.kpis.all()]
    primary = next((k for k in kpis if k["is_primary"]), None)
    return {"campaign": campaign.pk, "holdout": holdout.name, "arms": [a.name for a in arms],
            "audience": sum(audience.values()), "outcomes": sum(g.n for g in sums.values()),
            "min_group_size": settings.FEEDBACK_MIN_GROUP_SIZE, "confidence": stats.CONFIDENCE,
            "srm": _srm([holdout, *arms], audience), "kpis": kpis, "hit_rate": _hit_rate(primary),
            "headline": _headline(primary)}


def _finite(value: Any) -> Any:
    """JSON without NaN or infinity (PostgreSQL refuses them): such numbers become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def campaign_analyse(*, campaign_id: int) -> CampaignAnalysis | None:
    """Worker: compute, store, and raise or clear the falling-uplift alert."""
    campaign = Campaign.objects.select_related("model", "version").filter(pk=campaign_id).first()
    if campaign is None:
        return None
    started = time.perf_counter()
    result = _finite(analysis_compute(campaign))
    took = (time.perf_counter() - started) * 1000
    with transaction.atomic():
        analysis, _ = CampaignAnalysis.objects.update_or_create(campaign=campaign, defaults={
            "result": result, "data_version": campaign.data_version, "computed_at": timezone.now(),
            "duration_ms": took})
        _uplift_alert(campaign, result)
    return analysis


def _uplift_alert(campaign: Campaign, result: dict[str, Any]) -> None:
    """Primary KPI with enough data: any arm whose uplift went the wrong way opens the alert; all good clears it."""
    from monitoring.models import AlertKind, Severity
    from monitoring.services import alert_clear, alert_raise

    primary = next((k for k in result["kpis"] if k["is_primary"]), None)
    judged = [c for c in (primary or {}).get("comparisons", []) if c["enough"]]
    if not judged:
        return
    key = f"uplift:campaign:{campaign.pk}"
    sign = 1 if primary["direction"] == Direction.HIGHER else -1
    wrong = [c for c in judged if c["verdict"] == VERDICT_WORSE or sign * c["diff"] < 0]
    if not wrong:
        alert_clear(model=campaign.model, key=key, reason=f"Campaign “{campaign.name}” shows uplift again.")
        return
    severe = any(c["verdict"] == VERDICT_WORSE for c in wrong)
    alert_raise(model=campaign.model, key=key, kind=AlertKind.UPLIFT,
                severity=Severity.CRITICAL if severe else Severity.WARNING, version=campaign.version,
                title=f"Campaign “{campaign.name}” no longer shows uplift on {primary['title']}",
                detail=" ".join(c["summary"] for c in wrong))


def analysis_csv_rows(result: dict[str, Any]) -> list[list[Any]]:
    """One line per KPI and arm for the CSV export (numbers stay numbers)."""
    header = ["kpi", "arm", "is_holdout", "n", "rate_or_mean", "ci_low", "ci_high", "uplift", "uplift_ci_low",
              "uplift_ci_high", "relative_uplift", "p_value", "method", "verdict", "incremental", "money", "summary"]
    rows = [header]
    for kpi in result["kpis"]:
        comparisons = {c["arm"]: c for c in kpi["comparisons"]}
        for group in kpi["groups"]:
            c = comparisons.get(group["arm"], {})
            rows.append([kpi["name"], group["arm"], group["is_holdout"], group["n"], group["mean"], group["low"],
                         group["high"], c.get("diff"), c.get("low"), c.get("high"), c.get("relative"),
                         c.get("p_value"), c.get("method", ""), c.get("verdict", ""), c.get("incremental"),
                         c.get("money"), c.get("summary", "")])
    return rows


def analyses_refresh_stale(limit: int = 50) -> int:
    """Queue the analysis of campaigns whose data changed since it last ran (a lost task, a crash)."""
    from django.db.models import Q

    from feedback.tasks import campaign_analyse as task

    stale = Campaign.objects.filter(Q(analysis__isnull=True, data_version__gt=0)
                                    | Q(analysis__data_version__lt=F("data_version")))
    ids = list(stale.values_list("pk", flat=True)[:limit])
    for pk in ids:
        task.delay(pk)
    return len(ids)

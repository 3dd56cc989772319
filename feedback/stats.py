"""Statistics on group aggregates (count, sum, sum of squares): no rows ever reach this module.

Each comparison names its method so the page can say how an interval was made:
- yes/no KPIs: Newcombe's hybrid score interval (Wilson per group, method 10 of
  Newcombe 1998) for the difference of rates, two-proportion pooled z-test p-value;
- amounts: Welch's t interval and test (unequal variances, Welch-Satterthwaite df).
The sample-ratio check is Pearson's chi-square goodness of fit against the planned shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats as scipy_stats

CONFIDENCE = 0.95
POWER = 0.8
SRM_ALPHA = 0.001
METHOD_NEWCOMBE = "Newcombe hybrid score interval (Wilson), pooled two-proportion z-test"
METHOD_WELCH = "Welch's t interval and test (unequal variances)"
METHOD_SRM = "Pearson chi-square goodness of fit against the planned shares"


@dataclass(frozen=True)
class Group:
    """Aggregates of one group: number of outcomes, their sum and sum of squares."""

    n: int
    total: float
    squares: float

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (n - 1), floored at 0 against rounding."""
        if self.n < 2:
            return None
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def _z(confidence: float = CONFIDENCE) -> float:
    return float(scipy_stats.norm.ppf(0.5 + confidence / 2))


def wilson(events: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    z = _z(confidence)
    p = events / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _relative(diff: float, base: float | None, low: float, high: float) -> dict[str, float | None]:
    """Uplift relative to the holdout; its interval is the absolute one divided by the holdout mean."""
    if not base:
        return {"relative": None, "relative_low": None, "relative_high": None}
    return {"relative": diff / base, "relative_low": low / base, "relative_high": high / base}


def compare_rates(treated: Group, holdout: Group, confidence: float = CONFIDENCE) -> dict[str, Any] | None:
    """Difference of two proportions (treated - holdout) with Newcombe's interval and a z-test."""
    if treated.n == 0 or holdout.n == 0:
        return None
    p1, p2 = treated.total / treated.n, holdout.total / holdout.n
    l1, u1 = wilson(treated.total, treated.n, confidence)
    l2, u2 = wilson(holdout.total, holdout.n, confidence)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    pooled = (treated.total + holdout.total) / (treated.n + holdout.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / treated.n + 1 / holdout.n))
    p_value = float(2 * scipy_stats.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return {"diff": diff, "low": low, "high": high, "p_value": p_value, "method": METHOD_NEWCOMBE,
            **_relative(diff, p2, low, high)}


def compare_means(treated: Group, holdout: Group, confidence: float = CONFIDENCE) -> dict[str, Any] | None:
    """Difference of two means (treated - holdout) with Welch's interval and test."""
    v1, v2 = treated.variance, holdout.variance
    if v1 is None or v2 is None:
        return None
    diff = treated.mean - holdout.mean
    a, b = v1 / treated.n, v2 / holdout.n
    se = math.sqrt(a + b)
    if se == 0:
        return {"diff": diff, "low": diff, "high": diff, "p_value": 1.0 if diff == 0 else 0.0,
                "method": METHOD_WELCH, "df": None, **_relative(diff, holdout.mean, diff, diff)}
    df = (a + b) ** 2 / (a * a / (treated.n - 1) + b * b / (holdout.n - 1))
    t_crit = float(scipy_stats.t.ppf(0.5 + confidence / 2, df))
    p_value = float(2 * scipy_stats.t.sf(abs(diff) / se, df))
    low, high = diff - t_crit * se, diff + t_crit * se
    return {"diff": diff, "low": low, "high": high, "p_value": p_value, "method": METHOD_WELCH, "df": df,
            **_relative(diff, holdout.mean, low, high)}


def minimum_detectable_effect(treated: Group, holdout: Group, *, binary: bool,
                              confidence: float = CONFIDENCE, power: float = POWER) -> float | None:
    """The smallest absolute difference these group sizes detect with `power` (two-sided test)."""
    if treated.n == 0 or holdout.n == 0:
        return None
    if binary:
        base = holdout.mean if holdout.n else treated.mean
        variance = max(base * (1 - base), 1e-12)
        v1 = v2 = variance
    else:
        v1 = treated.variance if treated.variance is not None else holdout.variance
        v2 = holdout.variance if holdout.variance is not None else treated.variance
        if v1 is None or v2 is None:
            return None
    z_power = float(scipy_stats.norm.ppf(power))
    return (_z(confidence) + z_power) * math.sqrt(v1 / treated.n + v2 / holdout.n)


def sample_ratio_check(observed: list[int], shares: list[float]) -> dict[str, Any]:
    """Do the group sizes match the planned split? A tiny p-value means the assignment went wrong."""
    total = sum(observed)
    weight = sum(shares)
    if total == 0 or weight <= 0 or len(observed) < 2:
        return {"checked": False, "p_value": None, "mismatch": False, "method": METHOD_SRM}
    expected = [total * s / weight for s in shares]
    if any(e == 0 for e in expected):
        return {"checked": False, "p_value": None, "mismatch": False, "method": METHOD_SRM}
    statistic, p_value = scipy_stats.chisquare(observed, expected)
    return {"checked": True, "statistic": float(statistic), "p_value": float(p_value),
            "mismatch": bool(p_value < SRM_ALPHA), "expected": expected, "method": METHOD_SRM}

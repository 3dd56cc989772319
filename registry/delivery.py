"""Delivery metrics (DORA-style) read from the registry's own history. Read-only.

Every figure is `None` when there is not enough data to define it, so callers can say so
instead of showing a misleading zero. Durations are in hours.

- lead time: median hours from a version's registration to its first day in production;
- promotion frequency: production promotions per 30 days over the last `window_days`;
- change failure rate: share of production promotions whose version left production by a rollback;
- time to recovery: mean hours from a critical alert opening to its resolution (resolved ones only);
- in production: share of the models with a version in production now.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from monitoring.models import Alert, AlertStatus, Severity
from registry.models import RegisteredModel, Stage, StageTransition, TransitionKind

WINDOW_DAYS = 90
PERIOD_DAYS = 30


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _transitions(model_ids: list[int]) -> QuerySet[StageTransition]:
    return (StageTransition.objects.filter(model_id__in=model_ids).select_related("version")
            .order_by("model_id", "at", "id"))


def lead_times(transitions: list[StageTransition]) -> list[float]:
    """Hours from registration to the first arrival in production, one value per version that got there."""
    first: dict[int, StageTransition] = {}
    for t in transitions:
        if t.to_stage == Stage.PRODUCTION and t.version_id not in first:
            first[t.version_id] = t
    return [max(0.0, _hours(t.at - t.version.created_at)) for t in first.values()]


def production_promotions(transitions: list[StageTransition]) -> list[StageTransition]:
    return [t for t in transitions if t.to_stage == Stage.PRODUCTION and t.kind == TransitionKind.PROMOTION]


def rolled_back(transitions: list[StageTransition]) -> set[int]:
    """Ids of production promotions whose version was replaced by a rollback.

    Transitions are read in time order per model: a rollback into production displaces the
    version that held production just before it; if that one got there by promotion, it failed.
    """
    failed: set[int] = set()
    holder: dict[int, StageTransition] = {}
    for t in transitions:
        if t.to_stage != Stage.PRODUCTION:
            continue
        previous = holder.get(t.model_id)
        if t.kind == TransitionKind.ROLLBACK and previous is not None and previous.kind == TransitionKind.PROMOTION:
            failed.add(previous.pk)
        holder[t.model_id] = t
    return failed


def _figures(transitions: list[StageTransition], recoveries: list[float], *, now: datetime,
             window_days: int) -> dict[str, Any]:
    leads = lead_times(transitions)
    promotions = production_promotions(transitions)
    failed = rolled_back(transitions)
    recent = [t for t in promotions if t.at >= now - timedelta(days=window_days)]
    return {
        "lead_time_hours": statistics.median(leads) if leads else None,
        "lead_time_versions": len(leads),
        "promotions": len(promotions),
        "promotions_in_window": len(recent),
        "promotions_per_period": len(recent) * PERIOD_DAYS / window_days,
        "rolled_back": len(failed),
        "change_failure_rate": len(failed) / len(promotions) if promotions else None,
        "recovery_hours": statistics.fmean(recoveries) if recoveries else None,
        "recovered_alerts": len(recoveries),
    }


def _recoveries_by_model(model_ids: list[int]) -> dict[int, list[float]]:
    by_model: dict[int, list[float]] = {}
    alerts = Alert.objects.filter(model_id__in=model_ids, severity=Severity.CRITICAL,
                                  status=AlertStatus.RESOLVED,
                                  resolved_at__isnull=False).values_list("model_id", "opened_at", "resolved_at")
    for model_id, opened, resolved in alerts:
        by_model.setdefault(model_id, []).append(max(0.0, _hours(resolved - opened)))
    return by_model


def delivery_metrics(models_qs: QuerySet[RegisteredModel], *, now: datetime | None = None,
                     window_days: int = WINDOW_DAYS) -> dict[str, Any]:
    """Figures overall and per model: `{"overall": {...}, "models": [{"model": m, ...}], "window_days": n}`."""
    now = now or timezone.now()
    models = list(models_qs.order_by("name"))
    ids = [m.pk for m in models]
    transitions = list(_transitions(ids))
    in_production = set(RegisteredModel.objects.filter(pk__in=ids, versions__stage=Stage.PRODUCTION)
                        .values_list("pk", flat=True))
    recoveries = _recoveries_by_model(ids)
    overall = _figures(transitions, [h for hours in recoveries.values() for h in hours], now=now,
                       window_days=window_days)
    overall.update(models=len(models), models_in_production=len(in_production),
                   production_share=len(in_production) / len(models) if models else None)
    rows = [{"model": m, "in_production": m.pk in in_production,
             **_figures([t for t in transitions if t.model_id == m.pk], recoveries.get(m.pk, []), now=now,
                        window_days=window_days)} for m in models]
    return {"overall": overall, "models": rows, "window_days": window_days, "period_days": PERIOD_DAYS, "now": now}

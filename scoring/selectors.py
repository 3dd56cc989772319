"""Scoring reads."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from scoring.models import ScoringConfig, ScoringJob


def jobs_visible_to(user: Any) -> QuerySet[ScoringJob]:
    from registry.selectors import models_visible_to

    return ScoringJob.objects.filter(model__in=models_visible_to(user).values("pk")).select_related(
        "model", "version", "requested_by")


def job_for(user: Any, pk: int) -> ScoringJob:
    job = jobs_visible_to(user).filter(pk=pk).first()
    if job is None:
        raise Http404("No such scoring job.")
    return job


def job_progress(job: ScoringJob) -> dict[str, Any]:
    """Rows done, rate and a time estimate, for progress bars."""
    total = job.total_rows
    processed = job.rows_done + job.rows_failed
    elapsed = ((job.finished_at or timezone.now()) - job.started_at).total_seconds() if job.started_at else 0.0
    rate = processed / elapsed if elapsed > 0 else 0.0
    remaining = (total - processed) / rate if total and rate and not job.is_finished else None
    return {"total_rows": total, "rows_done": job.rows_done, "rows_failed": job.rows_failed,
            "percent": round(100 * processed / total, 1) if total else (100.0 if job.is_finished else 0.0),
            "rows_per_second": round(rate, 1), "eta_seconds": round(remaining) if remaining is not None else None}


def scoring_config_for(model: Any) -> ScoringConfig:
    """The model's stored traffic config, or the default (challenger off), unsaved."""
    found = ScoringConfig.objects.filter(model=model).select_related("updated_by").first()
    return found or ScoringConfig(model=model)

"""Scoring pages: batch jobs (list, new, one job with live progress, cancel) and a model's real-time traffic.

Views parse input, call a selector or a service, and render. Visibility comes from
`selectors.jobs_visible_to` / `job_for` and `registry.selectors.model_for` (404 for
what belongs to other teams); a `DomainError` is shown as its message, never a 500.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from opsportal.errors import DomainError
from opsportal.roles import Role, has_role, role_required
from opsportal.views import client_ip
from registry import selectors as registry_selectors
from registry.models import AliasName, ModelVersion, RegisteredModel, VersionStatus
from scoring import batch, selectors, services
from scoring.forms import SPECIFIC, JobCreateForm, TrafficForm
from scoring.models import ChallengerMode, ScoringJob

READERS = (Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
PAGE_SIZE = 25
MSG_JOB_CREATED = "Batch job #{pk} queued: a worker reads the file, then scores it chunk by chunk."
MSG_JOB_CANCELLED = "Batch job #{pk} cancelled. Rows already scored are kept; the rest are not scored."
MSG_TRAFFIC_SAVED = "Real-time traffic for {name}: {summary}."
TRAFFIC_SUMMARIES = {
    ChallengerMode.OFF: "the champion answers every request",
    ChallengerMode.SHADOW: "the challenger scores every request in the background",
    ChallengerMode.CANARY: "{percent}% of entities get the challenger's answer",
}


# --- helpers --------------------------------------------------------------------------------


def _show_domain_error(form: JobCreateForm, error: DomainError, field: str | None) -> None:
    """The service's message on the fields it names, else on `field` (or above the form)."""
    named = [name for name in error.details if name in form.fields and isinstance(error.details[name], list)]
    for name in named:
        form.add_error(name, error.details[name])
    if not named:
        form.add_error(field, error.message)


def _rate(rows_per_second: float) -> str:
    return f"{rows_per_second:,.0f}" if rows_per_second >= 10 else f"{rows_per_second:.1f}"


def _duration(seconds: float | None) -> str | None:
    """Seconds → "under a second", "12 seconds", "3 minutes", "1 hour, 5 minutes"."""
    if seconds is None:
        return None
    if seconds < 1:
        return "under a second"
    if seconds < 60:
        return f"{seconds:.0f} second{'' if round(seconds) == 1 else 's'}"
    now = timezone.now()
    return timesince(now - timedelta(seconds=seconds), now, depth=2)


def _progress(job: ScoringJob) -> dict[str, Any]:
    progress = selectors.job_progress(job)
    took = (job.finished_at - job.started_at).total_seconds() if job.started_at and job.finished_at else None
    eta = progress["eta_seconds"]
    return {**progress, "processed": job.rows_done + job.rows_failed, "rate": _rate(progress["rows_per_second"]),
            "eta": None if eta is None else ("less than a minute" if eta < 60 else f"about {_duration(eta)}"),
            "took": _duration(took)}


def _job_url_template() -> str:
    """The job page URL with `{pk}` in place of the id, for job_upload.js."""
    return reverse("scoring:job", args=[999_999_999]).replace("999999999", "{pk}")


# --- the job list ---------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def job_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.jobs_visible_to(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"job": job, "progress": _progress(job)} for job in page.object_list]
    context = {
        "page": page,
        "rows": rows,
        "running": any(not row["job"].is_finished for row in rows),
        "api_url": request.build_absolute_uri(reverse("api-scoring-jobs")),
    }
    return render(request, "scoring/job_list.html", context)


# --- a new job ------------------------------------------------------------------------------


def _scorable_models(user: Any) -> QuerySet[RegisteredModel]:
    """Visible models with at least one validated version."""
    ready = ModelVersion.objects.filter(model=OuterRef("pk"), status=VersionStatus.READY)
    return registry_selectors.models_visible_to(user).filter(Exists(ready)).order_by("name")


def _versions_summary(models: list[RegisteredModel]) -> dict[str, dict[str, Any]]:
    """Per model name: champion and challenger numbers and the ready versions, for the form's hints."""
    summary: dict[str, dict[str, Any]] = {m.name: {"aliases": {}, "ready": []} for m in models}
    versions = ModelVersion.objects.filter(model__in=models, status=VersionStatus.READY).order_by("number")
    for name, number in versions.values_list("model__name", "number"):
        summary[name]["ready"].append(number)
    for model in models:
        summary[model.name]["aliases"] = registry_selectors.aliases_of(model)
    return summary


def _job_create_from(request: HttpRequest, form: JobCreateForm) -> ScoringJob:
    model = registry_selectors.model_for(request.user, form.cleaned_data["model"])
    try:
        version = services.resolve_version(model, **form.target())
    except DomainError as error:
        _show_domain_error(form, error, "number" if form.cleaned_data["version"] == SPECIFIC else "version")
        raise
    try:
        return batch.job_create(model=model, version=version, user=request.user, upload=form.cleaned_data["file"],
                                ip=client_ip(request), **form.options())
    except DomainError as error:
        _show_domain_error(form, error, "file")
        raise


def _created(request: HttpRequest, job: ScoringJob) -> HttpResponse:
    messages.success(request, MSG_JOB_CREATED.format(pk=job.pk))
    url = reverse("scoring:job", args=[job.pk])
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":  # job_upload.js navigates itself
        return JsonResponse({"id": job.pk, "location": url}, status=201)
    return HttpResponseRedirect(url)


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def job_create(request: HttpRequest) -> HttpResponse:
    """The new-job form; job_upload.js posts it here with a progress bar, and it works without JavaScript."""
    models = list(_scorable_models(request.user))
    choices = [(m.name, f"{m.name} · {m.title}" if m.title and m.title != m.name else m.name) for m in models]
    form = JobCreateForm(request.POST or None, request.FILES or None, models=choices,
                         initial={"model": request.GET.get("model", "")})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                job = _job_create_from(request, form)
            except DomainError as error:
                status = error.status
            else:
                return _created(request, job)
    context = {
        "form": form,
        "has_models": bool(models),
        "versions": _versions_summary(models),
        "job_url": _job_url_template(),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
    }
    return render(request, "scoring/job_form.html", context, status=status)


# --- one job --------------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_for(request.user, pk)
    context = {
        "job": job,
        "progress": _progress(job),
        "chunks": job.chunks.all(),
        "error_limit": f"{job.max_error_rate * 100:g}",
        "result_url": reverse("api-scoring-job-result", args=[job.pk]),
        "can_cancel": batch.can_cancel(request.user, job),
    }
    return render(request, "scoring/job_detail.html", context)


@require_GET
@role_required(*READERS)
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress section; polled by htmx while the job runs, then the whole page is reloaded."""
    job = selectors.job_for(request.user, pk)
    response = render(request, "scoring/_job_progress.html", {"job": job, "progress": _progress(job)})
    if request.headers.get("HX-Request") and job.is_finished:
        response["HX-Refresh"] = "true"
    return response


@require_POST
@role_required(*READERS)
def job_cancel(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    job = selectors.job_for(request.user, pk)
    if not batch.can_cancel(request.user, job):
        raise PermissionDenied(batch.MSG_CANCEL_NOT_YOURS)
    try:
        batch.job_cancel(job=job, user=request.user, ip=client_ip(request))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, MSG_JOB_CANCELLED.format(pk=job.pk))
    return redirect("scoring:job", pk=job.pk)


# --- real-time traffic ----------------------------------------------------------------------


def _aliases(model: RegisteredModel) -> dict[str, ModelVersion]:
    return {a.name: a.version for a in model.aliases.select_related("version")}


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def traffic(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_for(request.user, name)
    can_route = has_role(request.user, Role.APPROVER)
    if request.method == "POST" and not can_route:
        raise PermissionDenied
    config = selectors.scoring_config_for(model)
    initial = {"challenger_mode": config.challenger_mode, "canary_percent": config.canary_percent or None}
    form = TrafficForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        mode, percent = form.cleaned_data["challenger_mode"], form.cleaned_data["canary_percent"]
        services.scoring_config_set(model=model, user=request.user, mode=mode, canary_percent=percent,
                                    ip=client_ip(request))
        summary = TRAFFIC_SUMMARIES[ChallengerMode(mode)].format(percent=percent)
        messages.success(request, MSG_TRAFFIC_SAVED.format(name=model.name, summary=summary))
        return redirect("scoring:config", name=model.name)
    aliases = _aliases(model)
    context = {
        "model": model,
        "config": config,
        "form": form,
        "can_route": can_route,
        "champion": aliases.get(AliasName.CHAMPION),
        "challenger": aliases.get(AliasName.CHALLENGER),
        "modes": ChallengerMode,
    }
    return render(request, "scoring/traffic.html", context, status=400 if form.errors else 200)

"""Campaign pages: list, new campaign, the business dashboard (audience, outcomes with live progress,
analysis, charts, comments, sign-off, retraining request), comparison across model versions, label upload.

Views parse input, call a selector or a service, and render. Visibility comes from
`feedback.selectors.campaign_for` (404 for other teams' campaigns); a `DomainError`
is shown as its message, never a 500.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feedback import analysis, api, charts, ingest, outcomes, selectors, services
from feedback.forms import (
    AudienceForm,
    CampaignForm,
    CommentForm,
    KpiFormSet,
    LabelsForm,
    OutcomesForm,
    RetrainingForm,
    SignOffForm,
)
from feedback.models import Campaign
from opsportal.errors import DomainError
from opsportal.roles import Role, role_required
from opsportal.views import client_ip
from registry import artifacts
from registry import selectors as registry_selectors
from scoring import selectors as scoring_selectors

READERS = (Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
MSG_CREATED = "Campaign “{name}” created. Next: build its audience."
MSG_ASSIGNED = "Audience ready: {assigned:,} entities ({arms}). {problems}"
MSG_PROBLEMS = "{n:,} rows were skipped; the first ones are listed below."
MSG_OUTCOMES_DONE = "Outcomes read: {created:,} new, {updated:,} changed, {unchanged:,} unchanged, {failed:,} refused."
MSG_OUTCOMES_QUEUED = "The file is being read by a worker; the progress shows below."
MSG_COMMENTED = "Comment added."
MSG_SIGNED = "Your sign-off is recorded."
MSG_RETRAIN = "The model's data scientists have been asked to retrain it."
MSG_REFRESHED = "Analysis recomputed."
MSG_PICK_FILE = "Choose a CSV file."
MSG_PICK_JOB = "Give the number of a finished scoring job."
MSG_LABELS = "Labels: {created:,} new, {updated:,} changed, {unchanged:,} unchanged, {failed:,} refused."
MSG_NO_KPI = "Add at least one KPI (for example churned_90d, lower is better)."


# --- list and create -----------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = list(selectors.campaign_list(request.user, model=request.GET.get("model", "")))
    rows = [{"campaign": c, "headline": c.analysis.result.get("headline") if hasattr(c, "analysis") else ""}
            for c in campaigns]
    context = {"rows": rows, "can_create": bool(_runnable_models(request.user))}
    return render(request, "feedback/campaign_list.html", context)


def _runnable_models(user: Any) -> list[tuple[str, str]]:
    models = [m for m in registry_selectors.models_visible_to(user).order_by("name")
              if selectors.can_run_campaign(user, m)]
    return [(m.name, f"{m.name} · {m.title}" if m.title and m.title != m.name else m.name) for m in models]


def _kpi_specs(formset: Any) -> list[services.KpiSpec]:
    specs = [form.spec(primary=not index) for index, form in enumerate(formset.forms)]
    return [spec for spec in specs if spec is not None]


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def campaign_create(request: HttpRequest) -> HttpResponse:
    models = _runnable_models(request.user)
    form = CampaignForm(request.POST or None, models=models, initial={"model": request.GET.get("model", "")})
    kpis = KpiFormSet(request.POST or None, prefix="kpi")
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid() and kpis.is_valid():
            model = registry_selectors.model_for(request.user, form.cleaned_data["model"])
            try:
                campaign = services.campaign_create(user=request.user, model=model, ip=client_ip(request),
                                                    spec=form.spec(_kpi_specs(kpis), request.user))
            except DomainError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, MSG_CREATED.format(name=campaign.name))
                return redirect("feedback:detail", pk=campaign.pk)
    return render(request, "feedback/campaign_form.html", {"form": form, "kpis": kpis, "has_models": bool(models)},
                  status=status)


# --- the dashboard -------------------------------------------------------------------------------------


def _finished_jobs(user: Any, campaign: Campaign) -> list[Any]:
    jobs = scoring_selectors.jobs_visible_to(user).filter(model=campaign.model, status__in=["succeeded", "partial"])
    return list(jobs.exclude(id_column="")[:20])


def _dashboard(request: HttpRequest, campaign: Campaign) -> dict[str, Any]:
    cached = selectors.analysis_of(campaign)
    result = cached.result if cached else None
    user = request.user
    return {
        "campaign": campaign, "analysis": cached, "result": result,
        "up_to_date": selectors.is_analysis_current(campaign, cached),
        "primary": next((k for k in (result or {}).get("kpis", []) if k["is_primary"]), None),
        "figures": _with_charts(result) if result else {},
        "arms": [{"arm": a, "size": n} for a, n in _arm_rows(campaign)],
        "uploads": selectors.uploads_of(campaign), "comments": campaign.comments.select_related("author", "version"),
        "sign_offs": campaign.sign_offs.select_related("user", "version"),
        "jobs": _finished_jobs(user, campaign),
        "can_run": selectors.can_run_campaign(user, campaign.model), "can_sign_off": selectors.can_sign_off(user),
        "can_request_retraining": selectors.can_request_retraining(user),
        "audience_form": AudienceForm(), "outcomes_form": OutcomesForm(), "comment_form": CommentForm(),
        "sign_off_form": SignOffForm(), "retraining_form": RetrainingForm(),
        "treatment_api": reverse("api-campaign-treatment", args=[campaign.pk]),
    }


def _with_charts(result: dict[str, Any]) -> dict[str, Any]:
    """The figures, and each KPI's group chart set on the KPI itself for the template."""
    figures = charts.figures(result)
    for index, kpi in enumerate(result["kpis"]):
        kpi["chart"], kpi["chart_id"] = figures["groups"][kpi["name"]], f"groups-figure-{index}"
    return figures


def _arm_rows(campaign: Campaign) -> list[tuple[Any, int]]:
    sizes = selectors.arm_sizes(campaign)
    return [(arm, sizes.get(arm.pk, 0)) for arm in campaign.arms.all()]


@require_GET
@role_required(*READERS)
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.campaign_for(request.user, pk)
    return render(request, "feedback/campaign_detail.html", _dashboard(request, campaign))


def _campaign_to_change(request: HttpRequest, pk: int) -> Campaign:
    campaign = selectors.campaign_for(request.user, pk)
    if not selectors.can_run_campaign(request.user, campaign.model):
        raise PermissionDenied
    return campaign


def _assign(request: HttpRequest, campaign: Campaign, form: AudienceForm) -> services.AssignmentReport:
    source = form.cleaned_data["source"]
    if source == "job":
        if not form.cleaned_data["job"]:
            raise DomainError("validation_error", MSG_PICK_JOB)
        job = scoring_selectors.job_for(request.user, form.cleaned_data["job"])
        return services.audience_from_job(campaign=campaign, job=job, user=request.user, ip=client_ip(request))
    upload = form.cleaned_data["file"]
    if upload is None:
        raise DomainError("validation_error", MSG_PICK_FILE)
    build = services.audience_from_scores if source == "scores" else services.audience_bring_your_own
    with artifacts.uploaded_to_path(upload) as path:
        ingest.csv_header(path, ("entity_id", "score") if source == "scores" else ("entity_id", "group"))
        return build(campaign=campaign, rows=ingest.csv_rows(path), user=request.user, ip=client_ip(request))


@require_POST
@role_required(*READERS)
def audience_upload(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign_to_change(request, pk)
    form = AudienceForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
        return redirect("feedback:detail", pk=pk)
    try:
        report = _assign(request, campaign, form)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("feedback:detail", pk=pk)
    problems = MSG_PROBLEMS.format(n=len(report.errors)) if report.errors else ""
    arms = ", ".join(f"{name} {n:,}" for name, n in report.by_arm.items())
    messages.success(request, MSG_ASSIGNED.format(assigned=report.assigned, arms=arms, problems=problems))
    for error in report.errors[:5]:
        messages.warning(request, f"Row {error['row']}: {error['error']}" if error["row"] else error["error"])
    return redirect("feedback:detail", pk=pk)


@require_POST
@role_required(*READERS)
def outcomes_upload(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign_to_change(request, pk)
    form = OutcomesForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, MSG_PICK_FILE)
        return redirect("feedback:detail", pk=pk)
    try:
        upload = outcomes.outcomes_from_file(campaign=campaign, user=request.user,
                                             upload_file=form.cleaned_data["file"], ip=client_ip(request))
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("feedback:detail", pk=pk)
    if upload.is_finished:
        messages.success(request, MSG_OUTCOMES_DONE.format(created=upload.created, updated=upload.updated,
                                                           unchanged=upload.unchanged, failed=upload.rows_failed))
    else:
        messages.info(request, MSG_OUTCOMES_QUEUED)
    return redirect(reverse("feedback:detail", args=[pk]) + "#outcomes")


@require_GET
@role_required(*READERS)
def upload_progress(request: HttpRequest, pk: int, upload: int) -> HttpResponse:
    """One upload's row; htmx polls it while a worker reads the file, then reloads the page."""
    campaign = selectors.campaign_for(request.user, pk)
    found = selectors.upload_for(campaign, upload)
    response = render(request, "feedback/_upload_row.html", {"campaign": campaign, "upload": found})
    if request.headers.get("HX-Request") and found.is_finished:
        response["HX-Refresh"] = "true"
    return response


@require_GET
@role_required(*READERS)
def treatment_export(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.campaign_for(request.user, pk)
    response = HttpResponse(api.treatment_csv(campaign), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-treatment.csv"'
    return response


@require_GET
@role_required(*READERS)
def analysis_export(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.campaign_for(request.user, pk)
    cached = selectors.analysis_of(campaign) or analysis.campaign_analyse(campaign_id=campaign.pk)
    response = HttpResponse(api.analysis_csv(cached.result), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-analysis.csv"'
    return response


@require_POST
@role_required(*READERS)
def analysis_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.campaign_for(request.user, pk)
    analysis.campaign_analyse(campaign_id=campaign.pk)
    messages.success(request, MSG_REFRESHED)
    return redirect("feedback:detail", pk=pk)


# --- what people say --------------------------------------------------------------------------------------


def _post_form(request: HttpRequest, pk: int, form_class: type, act: Any, done: str) -> HttpResponse:
    campaign = selectors.campaign_for(request.user, pk)
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
        return redirect(reverse("feedback:detail", args=[pk]) + "#discussion")
    try:
        act(campaign, form.cleaned_data)
    except DomainError as error:
        if error.status == 403:
            raise PermissionDenied(error.message) from None
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return redirect(reverse("feedback:detail", args=[pk]) + "#discussion")


@require_POST
@role_required(*READERS)
def comment_add(request: HttpRequest, pk: int) -> HttpResponse:
    return _post_form(request, pk, CommentForm, lambda c, data: services.campaign_comment(
        campaign=c, user=request.user, body=data["body"], ip=client_ip(request)), MSG_COMMENTED)


@require_POST
@role_required(*READERS)
def sign_off(request: HttpRequest, pk: int) -> HttpResponse:
    def act(campaign: Campaign, data: dict[str, Any]) -> None:
        cached = selectors.analysis_of(campaign)
        services.campaign_sign_off(campaign=campaign, user=request.user, decision=data["decision"],
                                   reason=data["reason"], summary=cached.result.get("headline", "") if cached else "",
                                   ip=client_ip(request))

    return _post_form(request, pk, SignOffForm, act, MSG_SIGNED)


@require_POST
@role_required(*READERS)
def retraining_request(request: HttpRequest, pk: int) -> HttpResponse:
    return _post_form(request, pk, RetrainingForm, lambda c, data: services.campaign_request_retraining(
        campaign=c, user=request.user, reason=data["reason"], ip=client_ip(request)), MSG_RETRAIN)


# --- across model versions -----------------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def campaign_compare(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_for(request.user, name)
    rows = selectors.campaigns_by_version(request.user, model)
    context = {"model": model, "rows": rows, "figure": charts.versions_figure(rows)}
    return render(request, "feedback/campaign_compare.html", context)


# --- labels -------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def labels_upload(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_for(request.user, name)
    can_change = registry_selectors.can_change_model(request.user, model)
    if request.method == "POST" and not can_change:
        raise PermissionDenied
    form = LabelsForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = services.labels_from_file(model=model, user=request.user, upload=form.cleaned_data["file"],
                                               ip=client_ip(request))
        except DomainError as error:
            form.add_error("file", error.message)
        else:
            messages.success(request, MSG_LABELS.format(created=report.created, updated=report.updated,
                                                        unchanged=report.unchanged, failed=report.failed))
    context = {"model": model, "form": form, "report": report, "can_change": can_change,
               "label_count": model.labels.count(), "api_url": reverse("api-model-labels", args=[model.name])}
    return render(request, "feedback/labels.html", context, status=400 if form.errors else 200)


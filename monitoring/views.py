"""Monitoring pages: alert inbox and alert, model health, run (per-feature table + Evidently report), and
the report file itself, served sandboxed. Views parse input, call a selector or a service, and render."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from monitoring import charts, prometheus, reports, selectors, services
from monitoring.api import can_acknowledge, can_run
from monitoring.forms import RuleForm, RunForm, ScheduleForm
from monitoring.models import AlertRule, AlertStatus, RunStatus
from opsportal.errors import DomainError
from opsportal.roles import Role, has_role, role_required
from opsportal.views import client_ip
from registry import selectors as registry_selectors

READERS = (Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
PAGE_SIZE = 25
MSG_RUN_QUEUED = "Monitoring run #{pk} queued: a worker compares the data with the reference and updates this page."
MSG_SCHEDULE_SAVED = "Schedule saved: every {every} h over the last {window} h{off}."
MSG_RULE_ADDED = "Alert rule added; it is checked after every run."
MSG_RULE_DELETED = "Alert rule deleted (its open alert, if any, was resolved)."
MSG_ACKNOWLEDGED = "Alert acknowledged: it stays listed until its condition clears."
STATUS_FILTERS = [("active", "Open and acknowledged"), *AlertStatus.choices]


# --- alerts -----------------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def alert_inbox(request: HttpRequest) -> HttpResponse:
    wanted = request.GET.get("status", "active")
    wanted = wanted if wanted in dict(STATUS_FILTERS) or wanted == "all" else "active"
    alerts = selectors.alerts_visible_to(request.user, status="" if wanted == "all" else wanted)
    page = Paginator(alerts, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "monitoring/alert_inbox.html",
                  {"page": page, "status": wanted, "filters": STATUS_FILTERS})


@require_GET
@role_required(*READERS)
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    alert = selectors.alert_for(request.user, pk)
    return render(request, "monitoring/alert_detail.html",
                  {"alert": alert, "can_acknowledge": can_acknowledge(request.user, alert.model)})


@require_POST
@role_required(*READERS)
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    alert = selectors.alert_for(request.user, pk)
    if not can_acknowledge(request.user, alert.model):
        raise PermissionDenied
    try:
        services.alert_acknowledge(alert=alert, user=request.user, ip=client_ip(request))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, MSG_ACKNOWLEDGED)
    if request.POST.get("next") == "inbox":
        return redirect("monitoring:alerts")
    return redirect("monitoring:alert", pk=alert.pk)


# --- model health ------------------------------------------------------------------------------


def _badges(latest: Any, open_alerts: list[Any]) -> list[dict[str, str]]:
    """At-a-glance verdicts, worst first: each is (label, level, text)."""
    if latest is None:
        return [{"label": "Monitoring", "level": "secondary", "text": "No run yet"}]
    badges = [
        {"label": "Data drift", "level": "danger" if latest.dataset_drift else "success",
         "text": f"{latest.columns_drifted or 0} of {latest.columns_total or 0} features drifted"
         if latest.columns_total else "No data in the last window"},
        {"label": "Predictions", "level": "warning" if latest.prediction_drift.get("drifted") else "success",
         "text": "drifted" if latest.prediction_drift.get("drifted") else "stable"
         if latest.prediction_drift else "not compared"},
    ]
    realized = latest.performance.get("overall", {})
    metric = "auc" if "auc" in realized else ("accuracy" if "accuracy" in realized else "r2")
    if metric in realized:
        badges.append({"label": "Performance", "level": "info", "text": f"{metric} {realized[metric]:.3f}"})
    elif latest.estimated_performance:
        estimate = latest.estimated_performance
        key = "auc" if "auc" in estimate else "accuracy"
        badges.append({"label": "Performance", "level": "info", "text": f"estimated {key} {estimate[key]:.3f}"})
    if latest.service:
        rate = latest.service.get("error_rate", 0.0)
        badges.append({"label": "Service", "level": "danger" if rate > 0.05 else "success",
                       "text": f"{latest.service.get('volume', 0)} requests, {rate:.1%} errors"})
    critical = [a for a in open_alerts if a.severity == "critical"]
    badges.insert(0, {"label": "Alerts", "level": "danger" if critical else ("warning" if open_alerts else "success"),
                      "text": f"{len(open_alerts)} open" if open_alerts else "none open"})
    return badges


def _figures(runs: list[dict[str, Any]], task: str) -> list[tuple[str, dict[str, Any]]]:
    metric = "r2" if task == "regression" else ("auc" if task == "binary_classification" else "accuracy")
    found = [("drift-heatmap", charts.drift_heatmap(runs)), ("prediction-figure", charts.prediction_distribution(runs)),
             ("performance-figure", charts.performance(runs, metric)), ("service-figure", charts.service(runs))]
    return [(name, figure) for name, figure in found if figure is not None]


@require_GET
@role_required(*READERS)
def model_health(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_for(request.user, name)
    open_alerts = selectors.open_alerts(model)
    latest = selectors.latest_run(model)
    runs = selectors.series(model)["runs"]
    schedule = selectors.schedule_for(model)
    context = {
        "model": model, "badges": _badges(latest, open_alerts), "latest": latest, "open_alerts": open_alerts,
        "figures": _figures(runs, model.task), "runs_count": len(runs),
        "recent": selectors.recent_runs(model), "schedule": schedule, "rules": selectors.rules_of(model),
        "can_run": can_run(request.user, model),
        "run_form": RunForm(), "rule_form": RuleForm(),
        "schedule_form": ScheduleForm(initial=_schedule_initial(schedule)),
    }
    return render(request, "monitoring/model_health.html", context)


def _schedule_initial(schedule: Any) -> dict[str, Any] | None:
    if schedule is None:
        return None
    return {"every_hours": schedule.every_hours, "window_hours": schedule.window_hours, "enabled": schedule.enabled}


def _form_errors(form: Any) -> str:
    return "; ".join(error for errors in form.errors.values() for error in errors)


def _require_runner(request: HttpRequest, name: str) -> Any:
    model = registry_selectors.model_for(request.user, name)
    if not can_run(request.user, model):
        raise PermissionDenied
    return model


@require_POST
@role_required(*READERS)
def run_create(request: HttpRequest, name: str) -> HttpResponse:
    model = _require_runner(request, name)
    form = RunForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Check the run settings: " + _form_errors(form))
        return redirect("monitoring:model", name=model.name)
    data = form.cleaned_data
    try:
        version = registry_selectors.version_for(request.user, name, data["version"]) if data["version"] else None
        start = timezone.now() - timedelta(hours=data["hours"]) if data["hours"] else None
        run = services.run_request(model=model, user=request.user, version=version, window_start=start,
                                   current_data=data["current_data"], ip=client_ip(request))
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("monitoring:model", name=model.name)
    messages.success(request, MSG_RUN_QUEUED.format(pk=run.pk))
    return redirect("monitoring:run", pk=run.pk)


@require_POST
@role_required(*READERS)
def schedule_update(request: HttpRequest, name: str) -> HttpResponse:
    model = _require_runner(request, name)
    form = ScheduleForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        services.schedule_set(model=model, user=request.user, every_hours=data["every_hours"],
                              window_hours=data["window_hours"], enabled=data["enabled"], ip=client_ip(request))
        messages.success(request, MSG_SCHEDULE_SAVED.format(every=data["every_hours"], window=data["window_hours"],
                                                            off="" if data["enabled"] else " (paused)"))
    else:
        messages.error(request, "Check the schedule: " + _form_errors(form))
    return redirect("monitoring:model", name=model.name)


@require_POST
@role_required(*READERS)
def rule_create(request: HttpRequest, name: str) -> HttpResponse:
    model = _require_runner(request, name)
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            services.rule_create(model=model, user=request.user, ip=client_ip(request), **form.cleaned_data)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, MSG_RULE_ADDED)
    else:
        messages.error(request, "Check the rule: " + _form_errors(form))
    return redirect("monitoring:model", name=model.name)


@require_POST
@role_required(*READERS)
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule.objects.filter(model__in=registry_selectors.models_visible_to(
        request.user).values("pk")).select_related("model"), pk=pk)
    _require_runner(request, rule.model.name)
    services.rule_delete(rule=rule, user=request.user, ip=client_ip(request))
    messages.success(request, MSG_RULE_DELETED)
    return redirect("monitoring:model", name=rule.model.name)


# --- runs ----------------------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_for(request.user, pk)
    context = {"run": run, "features": selectors.run_features(run), "iframe_sandbox": reports.IFRAME_SANDBOX,
               "segments": run.performance.get("segments", {})}
    return render(request, "monitoring/run_detail.html", context)


@require_GET
@role_required(*READERS)
def run_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The status line; polled by htmx until the run finishes, then the whole page reloads."""
    run = selectors.run_for(request.user, pk)
    response = render(request, "monitoring/_run_status.html", {"run": run})
    if request.headers.get("HX-Request") and run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        response["HX-Refresh"] = "true"
    return response


@require_GET
@role_required(*READERS)
@xframe_options_sameorigin
def run_report(request: HttpRequest, pk: int) -> HttpResponse:
    """Evidently's HTML, only ever as an opaque-origin sandbox (see monitoring.reports)."""
    run = selectors.run_for(request.user, pk)
    if not run.report_key:
        raise Http404("This run has no report.")
    with default_storage.open(run.report_key, "rb") as handle:
        response = HttpResponse(handle.read(), content_type="text/html; charset=utf-8")
    for header, value in reports.REPORT_HEADERS.items():
        response[header] = value
    return response


# --- Prometheus ------------------------------------------------------------------------------------


def _token_user(request: HttpRequest) -> Any:
    """The owner of a personal API token sent with the request, if it is valid."""
    from rest_framework.exceptions import APIException
    from rest_framework.request import Request

    from accounts.authentication import ApiTokenAuthentication

    try:
        found = ApiTokenAuthentication().authenticate(Request(request))
    except APIException:
        return None
    return found[0] if found else None


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.MONITORING_METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    user = request.user if request.user.is_authenticated else _token_user(request)
    return user is not None and has_role(user, Role.APPROVER)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; see MONITORING_METRICS_TOKEN for how scrapers authenticate."""
    if not _metrics_allowed(request):
        response = HttpResponse("Forbidden: send the metrics token or sign in as an approver.\n", status=403,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(prometheus.exposition(), content_type=prometheus.CONTENT_TYPE)

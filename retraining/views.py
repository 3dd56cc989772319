"""Retraining pages: the run list, a model's recipe editor (with "Run now"), and one run with its
live log and the challenger-vs-champion chart.

Views parse input, call a selector or a service, and render. Visibility comes from
`registry.selectors.model_for` and `selectors.run_for` (404 for other teams' models);
changes need `registry.selectors.can_change_model` (403). A `DomainError` is shown as
its message, never a 500.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from opsportal.errors import DomainError
from opsportal.roles import Role, role_required
from opsportal.views import client_ip
from registry import selectors as registry_selectors
from retraining import recipes, selectors, services
from retraining.forms import RecipeForm, initial_from
from retraining.models import RetrainingRun, RunStatus, Trigger

READERS = (Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
PAGE_SIZE = 25
MSG_SAVED = "Recipe saved."
MSG_RUN_QUEUED = "Run #{pk} queued on the training queue; this page follows it."
CHART_METRICS = ("roc_auc", "accuracy", "f1", "f1_macro", "precision", "recall", "r2", "rmse", "mae", "log_loss")


def _duration(run: RetrainingRun) -> str | None:
    seconds = run.duration_seconds
    if seconds is None and run.started_at is not None:
        seconds = (timezone.now() - run.started_at).total_seconds()
    if seconds is None:
        return None
    if seconds < 60:
        return f"{seconds:.0f} s"
    now = timezone.now()
    return timesince(now - timedelta(seconds=seconds), now, depth=2)


def _show_domain_error(form: RecipeForm, error: DomainError) -> None:
    named = [name for name in error.details if name in form.fields and isinstance(error.details[name], list)]
    for name in named:
        form.add_error(name, error.details[name])
    if not named:
        form.add_error(None, error.message)


# --- runs ----------------------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def run_list(request: HttpRequest) -> HttpResponse:
    model = request.GET.get("model", "")[:64]
    page = Paginator(selectors.runs_visible_to(request.user, model=model), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "rows": [{"run": r, "duration": _duration(r)} for r in page.object_list],
               "model": model, "recipes": selectors.recipes_visible_to(request.user),
               "query": urlencode({"model": model}) if model else ""}
    return render(request, "retraining/run_list.html", context)


def comparison_figure(run: RetrainingRun) -> dict[str, Any] | None:
    """Grouped bars: each metric of challenger and champion on the same held-out rows."""
    results = (run.comparison or {}).get("results") or {}
    ours = (results.get("candidate") or {}).get("metrics") or {}
    theirs = (results.get("champion") or {}).get("metrics") or {}
    names = [m for m in CHART_METRICS if m in ours]
    if not names:
        return None
    challenger = f"Challenger v{run.produced_version.number}" if run.produced_version else "Challenger"
    data = [{"type": "bar", "name": challenger, "x": names, "y": [ours[m] for m in names],
             "marker": {"color": "#0d6efd"}}]
    if theirs:
        number = run.comparison.get("champion_version")
        data.append({"type": "bar", "name": f"Champion v{number}", "x": names, "y": [theirs.get(m) for m in names],
                     "marker": {"color": "#ffc107"}})
    layout = {"barmode": "group", "height": 340, "margin": {"t": 10, "r": 10, "b": 40, "l": 50},
              "yaxis": {"title": {"text": f"on the {run.comparison.get('rows')} held-out rows"}},
              "legend": {"orientation": "h", "y": -0.2}}
    return {"data": data, "layout": layout, "config": {"displaylogo": False, "responsive": True}}


def _comparison_rows(run: RetrainingRun) -> list[dict[str, Any]]:
    results = (run.comparison or {}).get("results") or {}
    ours = (results.get("candidate") or {}).get("metrics") or {}
    theirs = (results.get("champion") or {}).get("metrics") or {}
    return [{"metric": m, "challenger": ours.get(m), "champion": theirs.get(m),
             "delta": ours[m] - theirs[m] if m in ours and theirs.get(m) is not None else None}
            for m in sorted(set(ours) | set(theirs))]


@require_GET
@role_required(*READERS)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_for(request.user, pk)
    context = {"run": run, "duration": _duration(run), "figure": comparison_figure(run),
               "comparison_rows": _comparison_rows(run), "model": run.model}
    return render(request, "retraining/run_detail.html", context)


@require_GET
@role_required(*READERS)
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """Status and log; polled by htmx while the run is active, then the whole page reloads."""
    run = selectors.run_for(request.user, pk)
    response = render(request, "retraining/_run_live.html", {"run": run, "duration": _duration(run)})
    if request.headers.get("HX-Request") and run.is_finished:
        response["HX-Refresh"] = "true"
    return response


@require_POST
@role_required(*READERS)
def run_start(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_for(request.user, name)
    if not registry_selectors.can_change_model(request.user, model):
        raise PermissionDenied
    reason = request.POST.get("reason", "")[:300]
    try:
        run = services.run_start(model=model, trigger=Trigger.MANUAL, user=request.user, detail=reason,
                                 ip=client_ip(request))
    except DomainError as error:
        messages.error(request, error.message)
        active = error.details.get("run")
        return redirect("retraining:run", pk=active) if active else redirect("retraining:recipe", name=model.name)
    messages.success(request, MSG_RUN_QUEUED.format(pk=run.pk))
    return redirect("retraining:run", pk=run.pk)


# --- the recipe ------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def recipe_edit(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_for(request.user, name)
    can_change = registry_selectors.can_change_model(request.user, model)
    if request.method == "POST" and not can_change:
        raise PermissionDenied
    recipe = selectors.recipe_of(model)
    form = RecipeForm(request.POST or None, request.FILES or None, task=model.task, initial=initial_from(recipe))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.recipe_save(model=model, user=request.user, data=form.recipe_input(),
                                     dataset=form.cleaned_data.get("dataset"), ip=client_ip(request))
            except DomainError as error:
                _show_domain_error(form, error)
                status = error.status if error.status != 409 else 400
            else:
                messages.success(request, MSG_SAVED)
                return redirect("retraining:recipe", name=model.name)
    runs = selectors.runs_visible_to(request.user, model=model.name)[:10]
    context = {
        "model": model, "recipe": recipe, "form": form, "can_change": can_change,
        "runs": [{"run": r, "duration": _duration(r)} for r in runs],
        "active": any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs),
        "tree_estimators": sorted(recipes.TREE_ESTIMATORS),
        "champion": registry_selectors.production_version(model),
        "policy_auto": bool(getattr(model, "approval_policy", None) and model.approval_policy.auto_promote),
    }
    return render(request, "retraining/recipe.html", context, status=status)

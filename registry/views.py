"""Registry pages: the model list, model and version pages, upload, compare and the safety settings.

Views parse input, call a selector or a service, and render. Visibility comes from
`selectors.model_for` / `version_for` (404 for models of other teams); changes are
checked with `selectors.can_change_model` (403).
"""

from __future__ import annotations

from typing import Any

from django import forms as django_forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from opsportal.errors import DomainError
from opsportal.roles import Role, has_role, is_admin, role_required
from opsportal.views import client_ip
from registry import selectors, services
from registry.forms import (
    CompareForm,
    ModelCreateForm,
    ModelEditForm,
    ModelFilterForm,
    PickleForm,
    TrustedTypeForm,
    VersionEditForm,
    VersionUploadForm,
)
from registry.models import AliasName, ModelAlias, ModelVersion, RegisteredModel, TrustedType, VersionStatus

READERS = (Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
PAGE_SIZE = 25
MSG_MODEL_CREATED = "Model “{name}” created. Upload its first version."
MSG_MODEL_UPDATED = "Model details saved."
MSG_VERSION_UPDATED = "Model card saved."
MSG_VERSION_REGISTERED = "Version {number} registered; it is being validated."
MSG_ACCEPTED = "The scikit-learn version difference is accepted; the version is being validated again."
MSG_NOT_WAITING = "This version is not waiting for a scikit-learn version decision."
MSG_TYPE_TRUSTED = "“{name}” is trusted. Versions that failed only for trusted types are being validated again."
MSG_TYPE_REMOVED = "“{name}” is no longer trusted. Versions already validated are not affected."
MSG_PICKLE_ON = "Pickle and joblib files are now accepted (loaded only inside the sandboxed validator)."
MSG_PICKLE_OFF = "Pickle and joblib files are refused again."
MSG_ARTIFACT_MISSING = "The artifact file is missing from storage."
EXTENSIONS = {"skops": "skops", "onnx": "onnx"}
IMPORTANCE_TITLES = {
    "roc_auc": "Drop in ROC AUC when the column is shuffled",
    "accuracy": "Drop in accuracy when the column is shuffled",
    "r2": "Drop in R² when the column is shuffled",
}
ACTION_LABELS = {
    "model.created": "created the model",
    "model.updated": "edited the model details",
    "version.registered": "registered the version",
    "version.validated": "validation passed",
    "version.validation_failed": "validation failed",
    "version.revalidation_queued": "queued validation again",
    "version.metadata_updated": "edited the model card",
    "version.sklearn_mismatch_accepted": "accepted the scikit-learn version difference",
    "artifact.tampered": "found the stored artifact altered",
    "promotion.opened": "requested a promotion",
    "promotion.gates_evaluated": "evaluated the promotion gates",
    "promotion.approval_given": "approved the promotion",
    "promotion.rejected": "rejected the promotion",
    "promotion.withdrawn": "withdrew the promotion request",
    "promotion.superseded": "superseded the promotion request with a newer version",
    "promotion.commented": "commented on the promotion",
    "promotion.gate_overridden": "overrode a failing gate",
    "model.promoted": "promoted the version",
    "model.rolled_back": "rolled production back to this version",
    "policy.updated": "changed the approval policy",
    "model.evaluation_data_set": "attached evaluation data",
}
SHOWN_CATEGORIES = 10
ALIAS_ORDER = [AliasName.CHAMPION, AliasName.CHALLENGER]


# --- helpers --------------------------------------------------------------------------------


def _show_domain_error(form: django_forms.Form, error: DomainError) -> None:
    """The service's message on the form: on the field it names, else above the form."""
    fields = [name for name in error.details if name in form.fields and isinstance(error.details[name], list)]
    if fields:
        for name in fields:
            form.add_error(name, error.details[name])
    else:
        form.add_error(None, error.message)


def _require_change(request: HttpRequest, model: RegisteredModel) -> None:
    if not selectors.can_change_model(request.user, model):
        raise PermissionDenied


def _number(value: Any, sign: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    return f"{value:+.6g}" if sign else f"{value:.6g}"


def _alias_rank(name: str) -> tuple[int, str]:
    return (ALIAS_ORDER.index(name) if name in ALIAS_ORDER else len(ALIAS_ORDER), name)


def _timeline(events: Any) -> list[dict[str, Any]]:
    return [{"event": e, "label": ACTION_LABELS.get(e.action, e.action)} for e in events]


def _querystring(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


# --- models ---------------------------------------------------------------------------------


@require_GET
@role_required(*READERS)
def model_list(request: HttpRequest) -> HttpResponse:
    form = ModelFilterForm(request.GET, teams=selectors.team_choices_for(request.user))
    filters = {k: v for k, v in form.cleaned_data.items() if v} if form.is_valid() else {}
    models = selectors.with_latest_version(selectors.model_list(request.user, **filters).select_related("team"))
    page = Paginator(models, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "query": _querystring(request),
        "filtered": bool(filters),
        "can_create": has_role(request.user, Role.DATA_SCIENTIST),
        "is_admin": is_admin(request.user),
    }
    return render(request, "registry/model_list.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.DATA_SCIENTIST)
def model_create(request: HttpRequest) -> HttpResponse:
    teams = selectors.teams_for_create(request.user)
    form = ModelCreateForm(request.POST or None, teams=teams, initial={"team": teams[0][0] if teams else ""})
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_create(user=request.user, ip=client_ip(request), **form.cleaned_data)
        except DomainError as error:
            _show_domain_error(form, error)
        else:
            messages.success(request, MSG_MODEL_CREATED.format(name=model.name))
            return redirect("registry:detail", name=model.name)
    status = 400 if form.errors else 200
    return render(request, "registry/model_form.html", {"form": form, "has_teams": bool(teams)}, status=status)


def _version_rows(versions: list[ModelVersion], aliases: dict[str, int]) -> list[dict[str, Any]]:
    by_number: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        by_number.setdefault(number, []).append(alias)
    return [
        {
            "version": v,
            "aliases": sorted(by_number.get(v.number, []), key=_alias_rank),
            "metrics": [(name, _number(value)) for name, value in list(v.metrics.items())[:3]],
        }
        for v in versions
    ]


@require_GET
@role_required(*READERS)
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = selectors.model_for(request.user, name)
    versions = list(selectors.versions_of(model))
    aliases = selectors.aliases_of(model)
    context = {
        "model": model,
        "owners": model.owners.all(),
        "tags": model.tags.all(),
        "aliases": sorted(aliases.items(), key=lambda item: _alias_rank(item[0])),
        "rows": _version_rows(versions, aliases),
        "numbers": [v.number for v in versions],
        "timeline": _timeline(selectors.model_timeline(model)[:20]),
        "can_change": selectors.can_change_model(request.user, model),
        "can_rollback": has_role(request.user, Role.APPROVER),
        "production": selectors.production_version(model),
    }
    return render(request, "registry/model_detail.html", context)


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def model_edit(request: HttpRequest, name: str) -> HttpResponse:
    model = selectors.model_for(request.user, name)
    _require_change(request, model)
    initial = {
        "title": model.title,
        "description": model.description,
        "business_objective": model.business_objective,
        "tags": ", ".join(t.tag for t in model.tags.all()),
    }
    form = ModelEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.model_update(model=model, user=request.user, changes=form.cleaned_data, ip=client_ip(request))
        except DomainError as error:
            _show_domain_error(form, error)
        else:
            messages.success(request, MSG_MODEL_UPDATED)
            return redirect("registry:detail", name=model.name)
    status = 400 if form.errors else 200
    return render(request, "registry/model_edit.html", {"model": model, "form": form}, status=status)


# --- upload ---------------------------------------------------------------------------------


def _upload_from(form: VersionUploadForm) -> services.VersionUpload:
    data = form.cleaned_data
    return services.VersionUpload(
        artifact=data["artifact"],
        format=data["format"],
        reference=data["reference_data"] or None,
        target_column=data["target_column"],
        metrics=data["metrics"],
        description=data["description"],
        intended_use=data["intended_use"],
        limitations=data["limitations"],
        source_code_ref=data["source_code_ref"],
        training_data_description=data["training_data_description"],
        parent_number=data["parent_version"],
    )


def _version_url_template(model: RegisteredModel) -> str:
    """The version page URL with `{number}` in place of the number, for upload.js."""
    return reverse("registry:version", args=[model.name, 999_999_999]).replace("999999999", "{number}")


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def version_upload(request: HttpRequest, name: str) -> HttpResponse:
    """The upload page; upload.js posts to the REST endpoint, and a plain POST here works without JavaScript."""
    model = selectors.model_for(request.user, name)
    _require_change(request, model)
    numbers = list(selectors.versions_of(model).values_list("number", flat=True))
    form = VersionUploadForm(request.POST or None, request.FILES or None, parents=numbers)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            version = services.version_register(
                model=model, user=request.user, upload=_upload_from(form), ip=client_ip(request)
            )
        except DomainError as error:
            _show_domain_error(form, error)
            status = error.status
        else:
            messages.success(request, MSG_VERSION_REGISTERED.format(number=version.number))
            return redirect("registry:version", name=model.name, number=version.number)
    elif request.method == "POST":
        status = 400
    context = {
        "model": model,
        "form": form,
        "api_url": reverse("api-versions", args=[model.name]),
        "version_url": _version_url_template(model),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
    }
    return render(request, "registry/version_upload.html", context, status=status)


# --- one version ----------------------------------------------------------------------------


def _signature_rows(version: ModelVersion) -> list[dict[str, Any]]:
    rows = []
    for column in version.signature.get("inputs", []):
        categories = column.get("categories") or []
        rows.append({
            **column,
            "shown_categories": categories[:SHOWN_CATEGORIES],
            "more_categories": len(categories) > SHOWN_CATEGORIES or bool(column.get("categories_truncated")),
            "range": (_number(column["min"]), _number(column["max"])) if "min" in column else None,
        })
    return rows


def _measured(value: Any, unit: str = "", scale: float = 1) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return f"{_number(value * scale)}{unit}"


def _validation_facts(version: ModelVersion) -> list[tuple[str, str]]:
    results = version.validation or {}
    timings = results.get("timings") or {}
    onnx = (results.get("onnx_timings") or {}).get("onnx") or {}
    batch = _measured(timings.get("batch_ms_per_row"), " ms")
    facts = [
        ("Load time", _measured(results.get("load_seconds"), " s")),
        ("Single row (scikit-learn)" if onnx else "Single row", _measured(timings.get("single_row_ms"), " ms")),
        ("Single row (ONNX twin)", _measured(onnx.get("single_row_ms"), " ms")),
        ("Batch, per row", batch and f"{batch} ({timings.get('batch_rows')} rows)"),
        ("Memory", _measured(results.get("memory_mb"), " MB")),
        ("Reference rows", _measured(version.reference_rows)),
        ("ONNX max difference", _measured(results.get("onnx_max_abs_diff"))),
    ]
    return [(label, value) for label, value in facts if value is not None]


def _importance_figure(version: ModelVersion) -> dict[str, Any] | None:
    """Plotly figure (data, layout, config) of the permutation importance, most important on top."""
    rows = [r for r in version.feature_importance if isinstance(r, dict) and "feature" in r]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r.get("importance", 0))
    scoring = rows[0].get("scoring", "")
    # Plotly reads labels as a small HTML subset (links, bold…): escape column names so they show as typed.
    features = [escape(r["feature"]) for r in rows]
    trace = {
        "type": "bar",
        "orientation": "h",
        "x": [r.get("importance", 0) for r in rows],
        "y": features,
        "error_x": {"type": "data", "array": [r.get("std", 0) for r in rows], "visible": True},
        "marker": {"color": "#1f6feb"},
        "hovertemplate": "%{y}: %{x:.4f} ± %{error_x.array:.4f}<extra></extra>",
    }
    layout = {
        "title": {"text": IMPORTANCE_TITLES.get(scoring, f"Drop in {escape(scoring)} when the column is shuffled")},
        "xaxis": {"title": {"text": "importance (mean ± std over 5 shuffles)"}, "zeroline": True},
        "yaxis": {"automargin": True},
        "margin": {"l": 10, "r": 20, "t": 50, "b": 50},
        "height": 140 + 26 * len(rows),
    }
    return {"data": [trace], "layout": layout, "config": {"displaylogo": False, "responsive": True}}


def _failure(version: ModelVersion) -> dict[str, Any]:
    mismatch = bool(
        version.status == VersionStatus.FAILED
        and version.trained_sklearn_version
        and version.version_mismatch_accepted_by_id is None
        and not version.untrusted_types
    )
    return {"untrusted_types": version.untrusted_types if version.status == VersionStatus.FAILED else [],
            "mismatch": mismatch}


@require_GET
@role_required(*READERS)
def version_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_for(request.user, name, number)
    model = version.model
    context = {
        "model": model,
        "version": version,
        "aliases": ModelAlias.objects.filter(version=version).values_list("name", flat=True),
        "metrics": [(k, _number(v)) for k, v in version.metrics.items()],
        "signature": _signature_rows(version),
        "output": version.signature.get("output") or {},
        "facts": _validation_facts(version),
        "importance": _importance_figure(version),
        "children": version.children.order_by("number"),
        "timeline": _timeline(selectors.version_timeline(version)),
        "failure": _failure(version),
        "can_change": selectors.can_change_model(request.user, model),
        "can_download": selectors.can_download_artifact(request.user, model),
        "is_admin": is_admin(request.user),
        "promotion_requests": version.promotion_requests.select_related("requester", "decided_by"),
        "gate_overrides": version.gate_overrides.select_related("admin", "request"),
    }
    return render(request, "registry/version_detail.html", context)


@require_GET
@role_required(*READERS)
def version_status(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """The status badge; polled by htmx while validating, then the whole card is reloaded."""
    version = selectors.version_for(request.user, name, number)
    response = render(request, "registry/_version_status.html", {"version": version, "model": version.model})
    if request.headers.get("HX-Request") and version.status != VersionStatus.VALIDATING:
        response["HX-Refresh"] = "true"
    return response


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def version_edit(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_for(request.user, name, number)
    _require_change(request, version.model)
    initial = {f: getattr(version, f) for f in services.EDITABLE_VERSION_FIELDS}
    form = VersionEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.version_update_metadata(
                version=version, user=request.user, changes=form.cleaned_data, ip=client_ip(request)
            )
        except DomainError as error:
            _show_domain_error(form, error)
        else:
            messages.success(request, MSG_VERSION_UPDATED)
            return redirect("registry:version", name=name, number=number)
    status = 400 if form.errors else 200
    context = {"model": version.model, "version": version, "form": form}
    return render(request, "registry/version_edit.html", context, status=status)


@require_GET
@role_required(*READERS)
def version_download(request: HttpRequest, name: str, number: int) -> FileResponse:
    version = selectors.version_for(request.user, name, number)
    if not selectors.can_download_artifact(request.user, version.model):
        raise PermissionDenied
    try:
        artifact = default_storage.open(version.artifact_key, "rb")
    except FileNotFoundError:
        raise Http404(MSG_ARTIFACT_MISSING) from None
    filename = f"{version.model.name}-v{version.number}.{EXTENSIONS.get(version.format, 'pkl')}"
    return FileResponse(artifact, as_attachment=True, filename=filename, content_type="application/octet-stream")


@require_POST
@role_required(admin=True)
def version_accept_mismatch(request: HttpRequest, name: str, number: int) -> HttpResponseRedirect:
    version = selectors.version_for(request.user, name, number)
    if services.version_accept_sklearn_mismatch(admin=request.user, version=version, ip=client_ip(request)):
        messages.success(request, MSG_ACCEPTED)
    else:
        messages.info(request, MSG_NOT_WAITING)
    return redirect("registry:version", name=name, number=number)


# --- compare --------------------------------------------------------------------------------


def _compare_facts(a: ModelVersion, b: ModelVersion) -> list[tuple[str, str, str]]:
    def measured(version: ModelVersion, unit: str, *path: str) -> str:
        value: Any = version.validation or {}
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return _measured(value, unit) or "—"

    def both(label: str, unit: str, *path: str) -> tuple[str, str, str]:
        return (label, measured(a, unit, *path), measured(b, unit, *path))

    return [
        ("Status", a.get_status_display(), b.get_status_display()),
        ("Stage", a.get_stage_display(), b.get_stage_display()),
        ("Format", a.get_format_display(), b.get_format_display()),
        ("Engine", a.get_engine_display() or "—", b.get_engine_display() or "—"),
        both("Single row (scikit-learn)", " ms", "timings", "single_row_ms"),
        both("Single row (ONNX twin)", " ms", "onnx_timings", "onnx", "single_row_ms"),
        both("Batch, per row", " ms", "timings", "batch_ms_per_row"),
        both("Load time", " s", "load_seconds"),
        both("Memory", " MB", "memory_mb"),
        ("Registered by", a.created_by.get_username(), b.created_by.get_username()),
    ]


def _default_pair(numbers: list[int]) -> dict[str, int]:
    if len(numbers) >= 2:
        return {"a": numbers[1], "b": numbers[0]}
    return {"a": numbers[0], "b": numbers[0]} if numbers else {}


@require_GET
@role_required(*READERS)
def version_compare(request: HttpRequest, name: str) -> HttpResponse:
    model = selectors.model_for(request.user, name)
    numbers = list(selectors.versions_of(model).values_list("number", flat=True))
    form = CompareForm(request.GET if {"a", "b"} <= set(request.GET) else (_default_pair(numbers) or None))
    context: dict[str, Any] = {"model": model, "form": form, "numbers": numbers}
    if numbers and form.is_valid():
        a = selectors.version_for(request.user, name, form.cleaned_data["a"])
        b = selectors.version_for(request.user, name, form.cleaned_data["b"])
        metrics = [
            {**row, "a": _number(row["a"]), "b": _number(row["b"]),
             "delta": None if row["delta"] is None else _number(row["delta"], sign=True)}
            for row in selectors.metrics_comparison(a, b)
        ]
        context.update(a=a, b=b, metrics=metrics, signature=selectors.signature_diff(a, b),
                       facts=_compare_facts(a, b))
    return render(request, "registry/version_compare.html", context, status=400 if form.errors else 200)


# --- safety settings (admins) ---------------------------------------------------------------


def _safety_page(request: HttpRequest, add_form: TrustedTypeForm, status: int = 200) -> HttpResponse:
    policy = selectors.registry_policy()
    context = {
        "trusted": TrustedType.objects.select_related("added_by"),
        "add_form": add_form,
        "pickle_form": PickleForm(initial={"allow_pickle": policy.allow_pickle}),
        "policy": policy,
        "waiting": selectors.versions_failed_untrusted(),
    }
    return render(request, "registry/safety.html", context, status=status)


def _trust_add(request: HttpRequest) -> HttpResponse:
    form = TrustedTypeForm(request.POST)
    if form.is_valid():
        try:
            trusted = services.trusted_type_add(admin=request.user, ip=client_ip(request), **form.cleaned_data)
        except DomainError as error:
            _show_domain_error(form, error)
        else:
            messages.success(request, MSG_TYPE_TRUSTED.format(name=trusted.name))
            return redirect("registry:safety")
    return _safety_page(request, form, status=400)


def _trust_remove(request: HttpRequest) -> HttpResponse:
    trusted = get_object_or_404(TrustedType, pk=request.POST.get("pk") or 0)
    name = trusted.name
    services.trusted_type_remove(admin=request.user, trusted=trusted, ip=client_ip(request))
    messages.success(request, MSG_TYPE_REMOVED.format(name=name))
    return redirect("registry:safety")


def _pickle_switch(request: HttpRequest) -> HttpResponse:
    form = PickleForm(request.POST)
    allow = form.is_valid() and form.cleaned_data["allow_pickle"]
    services.policy_set_allow_pickle(admin=request.user, allow=allow, ip=client_ip(request))
    if allow:
        messages.warning(request, MSG_PICKLE_ON)
    else:
        messages.success(request, MSG_PICKLE_OFF)
    return redirect("registry:safety")


SAFETY_ACTIONS = {"trust": _trust_add, "untrust": _trust_remove, "pickle": _pickle_switch}


@require_http_methods(["GET", "POST"])
@role_required(admin=True)
def safety_settings(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        action = SAFETY_ACTIONS.get(request.POST.get("action", ""))
        if action is None:
            return _safety_page(request, TrustedTypeForm(), status=400)
        return action(request)
    return _safety_page(request, TrustedTypeForm(initial={"name": request.GET.get("name", "")}))


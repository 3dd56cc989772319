"""Governance pages: the approvals inbox, a promotion request, promote, history, rollback, policies, delivery.

Views parse input, call `registry.promotions` or a selector, and render. Every POST
redirects back with a flash message; a `GovernanceError` becomes that message, never a 500.
Visibility comes from `selectors.model_for` / `promotion_for` (404 for what one cannot see).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from opsportal.errors import DomainError
from opsportal.roles import ROLE_LABELS, Role, has_role, is_admin, role_required, user_roles
from opsportal.views import client_ip
from registry import delivery, promotions, selectors
from registry.forms_governance import (
    CommentForm,
    DecisionForm,
    MomentForm,
    OverrideForm,
    PolicyForm,
    PromotionRequestForm,
    RollbackForm,
    threshold_formset,
)
from registry.gates import GATE_LABELS, enabled
from registry.models import (
    ApprovalPolicy,
    Decision,
    GatesStatus,
    PromotionRequest,
    RegisteredModel,
    RequestStatus,
    TransitionKind,
)

READERS = (Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
INBOX_ROWS = 50
RECENT_ROWS = 20
MSG_OPENED = "Promotion to {target} requested. The gates are being evaluated; approvers have been told."
MSG_APPROVED_PROMOTED = "Approved: v{number} is now in {target}."
MSG_APPROVED_WAITING = "Your approval is recorded. Still needed: {missing}."
MSG_APPROVED_GATES = "Your approval is recorded. The version moves once every gate passes (or is overridden)."
MSG_REJECTED = "Rejected. The requester has been told why."
MSG_COMMENTED = "Comment added."
MSG_OVERRIDDEN = "The gate “{gate}” is overridden for this version; your reason is kept on it."
MSG_WITHDRAWN = "The request is withdrawn."
MSG_ROLLED_BACK = "Rolled back: v{number} is in production again."
MSG_POLICY_SAVED = "Policy saved. It applies to requests from now on (and to gates evaluated again)."
MSG_INVALID = "{field}: {error}"


# --- helpers ---------------------------------------------------------------------------------------


def _flash_error(request: HttpRequest, error: DomainError) -> None:
    messages.error(request, error.message)


def _flash_form_errors(request: HttpRequest, form: Any) -> None:
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        for error in errors:
            messages.error(request, MSG_INVALID.format(field=label, error=error) if label else error)


def _role_names(roles: dict[str, int]) -> str:
    """{"approver": 2, "business_owner": 1} → "2 approvers, 1 business owner"."""
    return ", ".join(f"{n} {ROLE_LABELS.get(r, r).lower()}{'s' if n > 1 else ''}" for r, n in roles.items())


def _back_to(promotion: PromotionRequest) -> HttpResponseRedirect:
    return redirect("approvals:promotion", pk=promotion.pk)


# --- the approvals inbox ---------------------------------------------------------------------------


def _policy_of(policies: dict[int | None, ApprovalPolicy], promotion: PromotionRequest) -> ApprovalPolicy:
    return policies.get(promotion.version.model_id) or policies[None]


def _roles_of(user: Any) -> set[str]:
    return set(user_roles(user)) | ({str(Role.APPROVER)} if user.is_staff else set())


def _counts_for(user: Any, promotion: PromotionRequest, policy: ApprovalPolicy) -> bool:
    """Whether one of the person's roles is among those the policy asks for on this request."""
    return bool(_roles_of(user) & set(promotions.required_roles(policy, promotion.target)))


def _gate_summary(promotion: PromotionRequest) -> dict[str, Any]:
    overridden = {o.gate for o in promotion.overrides.all()}
    failing = [r for r in promotion.gate_results if not r["passed"] and r["gate"] not in overridden]
    status = promotion.gates_status
    if status == GatesStatus.EVALUATING and promotion.status != RequestStatus.OPEN:
        status = "not_evaluated"
    return {"status": status, "failing": len(failing),
            "overridden": len([r for r in promotion.gate_results if r["gate"] in overridden and not r["passed"]])}


def _inbox_rows(promotions_: Any, policies: dict[int | None, ApprovalPolicy]) -> list[dict[str, Any]]:
    rows = []
    for promotion in promotions_:
        missing = (promotions.approvals_missing(promotion, _policy_of(policies, promotion))
                   if promotion.status == RequestStatus.OPEN else {})
        rows.append({"promotion": promotion, "gates": _gate_summary(promotion), "missing": _role_names(missing)})
    return rows


@require_GET
@role_required(*READERS)
def approvals_inbox(request: HttpRequest) -> HttpResponse:
    user, policies = request.user, selectors.policies_by_model()
    visible = selectors.promotion_requests_visible_to(user).prefetch_related("overrides")
    waiting = selectors.promotions_awaiting(user)[:INBOX_ROWS]
    mine = visible.filter(requester=user)[:INBOX_ROWS]
    decided = visible.exclude(status=RequestStatus.OPEN).order_by("-decided_at", "-id")[:RECENT_ROWS]
    tab = request.GET.get("tab", "")
    context = {
        "waiting": _inbox_rows(waiting, policies),
        "mine": _inbox_rows(mine, policies),
        "decided": _inbox_rows(decided, policies),
        "tab": tab if tab in {"waiting", "mine", "decided"} else "waiting",
        "is_admin": is_admin(user),
    }
    return render(request, "registry/approvals_inbox.html", context)


# --- one promotion request -------------------------------------------------------------------------


def _gate_rows(promotion: PromotionRequest, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for result in promotion.gate_results:
        state = "pass" if result["passed"] else ("overridden" if result["gate"] in overrides else "fail")
        rows.append({**result, "state": state, "override": overrides.get(result["gate"]),
                     "measured_text": _measured_text(_shown_measurement(result))})
    return rows


def _shown_measurement(result: dict[str, Any]) -> Any:
    """Metric thresholds measure every metric; show those with a threshold (the comparison has the rest)."""
    measured = result.get("measured")
    if result["gate"] == "metric_thresholds" and isinstance(measured, dict):
        return {k: v for k, v in measured.items() if k in (result.get("threshold") or {})}
    return measured


def _measured_text(measured: Any) -> str:
    """A short reading of a gate's measurement; the detail column already explains it in words."""
    if measured is None or measured in ([], {}):
        return ""
    if isinstance(measured, dict):
        parts = [f"{k} {_fmt(v)}" for k, v in measured.items() if not isinstance(v, (dict, list))]
        return ", ".join(parts)
    if isinstance(measured, list):
        return ", ".join(str(m.get("column", m)) if isinstance(m, dict) else str(m) for m in measured)
    return _fmt(measured)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _gates_changed(promotion: PromotionRequest) -> list[dict[str, Any]]:
    """Gates whose outcome differs between the first evaluation and the latest one."""
    at_open = {r["gate"]: r for r in promotion.gates_at_open}
    rows = []
    for now in promotion.gate_results:
        before = at_open.get(now["gate"])
        if before is None or before["passed"] != now["passed"] or before["detail"] != now["detail"]:
            rows.append({"label": now["label"], "before": before, "now": now})
    rows += [{"label": r["label"], "before": r, "now": None} for g, r in at_open.items()
             if g not in {n["gate"] for n in promotion.gate_results}]
    return rows


def _comparison(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    results = evaluation.get("results") or {}
    candidate = (results.get("candidate") or {}).get("metrics") or {}
    champion = (results.get("champion") or {}).get("metrics") or {}
    rows = []
    for name in sorted(set(candidate) | set(champion)):
        ours, theirs = candidate.get(name), champion.get(name)
        delta = ours - theirs if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) else None
        rows.append({"metric": name, "candidate": _number(ours), "champion": _number(theirs),
                     "delta": None if delta is None else f"{delta:+.4f}"})
    return rows


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def _approvals(promotion: PromotionRequest) -> list[Any]:
    approvals = list(promotion.approvals.select_related("user"))
    for approval in approvals:
        approval.role_label = ROLE_LABELS.get(approval.role, approval.role).lower()
    return approvals


def _may_decide(user: Any, promotion: PromotionRequest, policy: ApprovalPolicy) -> bool:
    decided = promotion.approvals.filter(user=user).exists()
    return promotion.status == RequestStatus.OPEN and not decided and _counts_for(user, promotion, policy)


def _four_eyes_refusal(user: Any, promotion: PromotionRequest, policy: ApprovalPolicy) -> str:
    """The service's four-eyes message for this person, said before they click (the service checks again)."""
    try:
        promotions.check_four_eyes(user, promotion, policy)
    except DomainError as error:
        return error.message
    return ""


def _detail_context(request: HttpRequest, promotion: PromotionRequest) -> dict[str, Any]:
    user, policy = request.user, selectors.policy_for(promotion.version.model)
    overrides = {o.gate: o for o in promotion.overrides.select_related("admin")}
    gate_rows = _gate_rows(promotion, overrides)
    failing = [(r["gate"], r["label"]) for r in gate_rows if r["state"] == "fail"]
    is_open = promotion.status == RequestStatus.OPEN
    evaluation = promotion.evaluation or {}
    return {
        "promotion": promotion,
        "version": promotion.version,
        "model": promotion.version.model,
        "gates": gate_rows,
        "gates_changed": _gates_changed(promotion) if promotion.gates_at_open else [],
        "evaluation": evaluation,
        "comparison": _comparison(evaluation),
        "champion": promotion.champion_at_evaluation,
        "approvals": _approvals(promotion),
        "missing": _role_names(promotions.approvals_missing(promotion, policy)) if is_open else "",
        "required": _role_names(promotions.required_roles(policy, promotion.target)),
        "comments": promotion.comments.select_related("author"),
        "may_decide": _may_decide(user, promotion, policy),
        "four_eyes": _four_eyes_refusal(user, promotion, policy),
        "may_withdraw": is_open and (promotion.requester_id == user.pk or is_admin(user)),
        "override_form": OverrideForm(gates=failing) if is_open and failing and is_admin(user) else None,
        "decision_form": DecisionForm(),
        "comment_form": CommentForm(),
        "is_open": is_open,
        "evaluating": is_open and promotion.gates_status == GatesStatus.EVALUATING,
    }


@require_GET
@role_required(*READERS)
def promotion_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The request page; while the gates are evaluated htmx polls it for the status line only."""
    promotion = selectors.promotion_for(request.user, pk)
    if request.headers.get("HX-Request"):
        evaluating = promotion.status == RequestStatus.OPEN and promotion.gates_status == GatesStatus.EVALUATING
        response = render(request, "registry/promotion_gates_poll.html",
                                     {"promotion": promotion, "evaluating": evaluating})
        if not evaluating:
            response["HX-Refresh"] = "true"
        return response
    return render(request, "registry/promotion_detail.html", _detail_context(request, promotion))


def _approved_message(promotion: PromotionRequest) -> str:
    if promotion.status == RequestStatus.APPROVED:
        return MSG_APPROVED_PROMOTED.format(number=promotion.version.number, target=promotion.target)
    missing = promotions.approvals_missing(promotion, selectors.policy_for(promotion.version.model))
    return MSG_APPROVED_WAITING.format(missing=_role_names(missing)) if missing else MSG_APPROVED_GATES


@require_POST
@role_required(*READERS)
def promotion_decide(request: HttpRequest, pk: int) -> HttpResponse:
    promotion = selectors.promotion_for(request.user, pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        _flash_form_errors(request, form)
        return _back_to(promotion)
    decision = form.cleaned_data["decision"]
    try:
        decided = promotions.promotion_decide(request=promotion, user=request.user, decision=decision,
                                              comment=form.cleaned_data["comment"], ip=client_ip(request))
    except DomainError as error:
        _flash_error(request, error)
    else:
        if decision == Decision.REJECT:
            messages.success(request, MSG_REJECTED)
        else:
            messages.success(request, _approved_message(decided))
    return _back_to(promotion)


@require_POST
@role_required(*READERS)
def promotion_comment(request: HttpRequest, pk: int) -> HttpResponse:
    promotion = selectors.promotion_for(request.user, pk)
    form = CommentForm(request.POST)
    if not form.is_valid():
        _flash_form_errors(request, form)
        return _back_to(promotion)
    try:
        promotions.promotion_comment(request=promotion, user=request.user, body=form.cleaned_data["body"],
                                     ip=client_ip(request))
    except DomainError as error:
        _flash_error(request, error)
    else:
        messages.success(request, MSG_COMMENTED)
    return redirect(reverse("approvals:promotion", args=[promotion.pk]) + "#comments")


@require_POST
@role_required(admin=True)
def promotion_override(request: HttpRequest, pk: int) -> HttpResponse:
    promotion = selectors.promotion_for(request.user, pk)
    form = OverrideForm(request.POST, gates=[(g, g) for g in GATE_LABELS])
    if not form.is_valid():
        _flash_form_errors(request, form)
        return _back_to(promotion)
    gate = form.cleaned_data["gate"]
    try:
        promotions.gate_override(request=promotion, admin=request.user, gate=gate,
                                 reason=form.cleaned_data["reason"], ip=client_ip(request))
    except DomainError as error:
        _flash_error(request, error)
    else:
        messages.success(request, MSG_OVERRIDDEN.format(gate=GATE_LABELS.get(gate, gate)))
    return _back_to(promotion)


@require_POST
@role_required(*READERS)
def promotion_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    promotion = selectors.promotion_for(request.user, pk)
    try:
        promotions.promotion_withdraw(request=promotion, user=request.user, ip=client_ip(request))
    except DomainError as error:
        _flash_error(request, error)
    else:
        messages.success(request, MSG_WITHDRAWN)
    return _back_to(promotion)


# --- asking for a promotion ------------------------------------------------------------------------


@require_POST
@role_required(*READERS)
def promotion_open(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_for(request.user, name, number)
    if not selectors.can_change_model(request.user, version.model):
        raise PermissionDenied
    form = PromotionRequestForm(request.POST)
    if not form.is_valid():
        _flash_form_errors(request, form)
        return redirect(version_url(version) + "#promote")
    try:
        opened = promotions.promotion_open(version=version, user=request.user, ip=client_ip(request),
                                           **form.cleaned_data)
    except DomainError as error:
        _flash_error(request, error)
        return redirect(version_url(version) + "#promote")
    messages.success(request, MSG_OPENED.format(target=opened.target))
    return _back_to(opened)


def version_url(version: Any) -> str:
    return reverse("registry:version", args=[version.model.name, version.number])


# --- production history and rollback ---------------------------------------------------------------


def _timeline_figure(history: list[dict[str, Any]], now: Any) -> dict[str, Any] | None:
    """Plotly figure: one horizontal bar per production interval, on a time axis."""
    if not history:
        return None
    colours = {TransitionKind.PROMOTION: "#1f6feb", TransitionKind.ROLLBACK: "#d29922"}
    traces = []
    for kind in (TransitionKind.PROMOTION, TransitionKind.ROLLBACK):
        rows = [h for h in reversed(history) if h["kind"] == kind]
        if not rows:
            continue
        ends = [h["until"] or now for h in rows]
        traces.append({
            "type": "bar", "orientation": "h", "name": "by " + str(kind.label).lower(),
            "y": [f"v{h['version']}" for h in rows],
            "base": [h["since"].isoformat() for h in rows],
            "x": [max((end - h["since"]).total_seconds() * 1000, 60_000) for h, end in zip(rows, ends, strict=True)],
            "marker": {"color": colours[kind]},
            "customdata": [escape(h["by"]) for h in rows],
            "hovertemplate": "%{y}: %{base|%Y-%m-%d %H:%M} → %{x}<br>by %{customdata}<extra></extra>",
        })
    versions = sorted({h["version"] for h in history})
    layout = {
        "xaxis": {"type": "date"},
        "yaxis": {"type": "category", "categoryorder": "array", "categoryarray": [f"v{n}" for n in versions],
                  "automargin": True},
        "barmode": "overlay", "height": 130 + 36 * len(versions), "margin": {"l": 10, "r": 20, "t": 40, "b": 40},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    }
    return {"data": traces, "layout": layout, "config": {"displaylogo": False, "responsive": True}}


@require_GET
@role_required(*READERS)
def model_history(request: HttpRequest, name: str) -> HttpResponse:
    model = selectors.model_for(request.user, name)
    history = selectors.production_history(model)
    form = MomentForm(request.GET if "at" in request.GET else None)
    found = None
    if form.is_bound and form.is_valid():
        found = selectors.in_production_at(model, form.cleaned_data["at"])
    for interval in history:
        interval["highlight"] = found is not None and interval["since"] == found["since"]
    context = {
        "model": model,
        "history": history,
        "form": form,
        "asked": form.is_bound and form.is_valid(),
        "found": found,
        "figure": _timeline_figure(history, timezone.now()),
        "can_rollback": has_role(request.user, Role.APPROVER) and len(history) > 1,
        "rollback_form": RollbackForm(),
    }
    return render(request, "registry/history.html", context, status=400 if form.errors else 200)


@require_POST
@role_required(Role.APPROVER)
def model_rollback(request: HttpRequest, name: str) -> HttpResponse:
    model = selectors.model_for(request.user, name)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        _flash_form_errors(request, form)
        return redirect("registry:detail", name=model.name)
    try:
        restored = promotions.model_rollback(model=model, user=request.user, reason=form.cleaned_data["reason"],
                                             ip=client_ip(request))
    except DomainError as error:
        _flash_error(request, error)
    else:
        messages.success(request, MSG_ROLLED_BACK.format(number=restored.number))
    return redirect("registry:detail", name=model.name)


# --- approval policies -----------------------------------------------------------------------------


def _policy_summary(policy: ApprovalPolicy) -> dict[str, Any]:
    needed = {target: _role_names(promotions.required_roles(policy, target)) or "no approval"
              for target in ("staging", "production")}
    gates = []
    for gate, config in enabled(policy).items():
        if gate == "beats_champion" and isinstance(config, dict) and config.get("enabled") is False:
            continue
        gates.append({"gate": gate, "label": GATE_LABELS[gate], "config": _config_text(gate, config)})
    gates.sort(key=lambda g: list(GATE_LABELS).index(g["gate"]))
    return {"needed": needed, "gates": gates}


def _config_text(gate: str, config: Any) -> str:
    if gate == "metric_thresholds":
        parts = [" and ".join(f"{metric} {'≥' if k == 'min' else '≤'} {v}" for k, v in bounds.items())
                 for metric, bounds in (config or {}).items()]
        return "; ".join(parts) or "no thresholds set"
    if gate == "beats_champion":
        return f"tolerance {config.get('tolerance', 0.0)}" if isinstance(config, dict) else ""
    if gate == "fairness" and isinstance(config, dict):
        return f"{config.get('metric', 'positive_rate')} gap by {config.get('column')} ≤ {config.get('max_gap')}"
    if gate == "model_card_complete" and isinstance(config, list):
        return ", ".join(f.replace("_", " ") for f in config)
    return ""


def _policy_page(request: HttpRequest, model: RegisteredModel | None) -> HttpResponse:
    policy = selectors.policy_for(model) if model is not None else ApprovalPolicy.objects.get(model=None)
    admin = is_admin(request.user)
    form, thresholds, status = None, None, 200
    if admin:
        form = PolicyForm(request.POST or None, initial=PolicyForm.initial_for(policy))
        thresholds = threshold_formset(policy, request.POST or None)
    if request.method == "POST":
        if not admin:
            raise PermissionDenied
        if form.is_valid() and thresholds.is_valid():
            promotions.policy_update(model=model, admin=request.user, ip=client_ip(request),
                                     changes=form.changes(policy, thresholds.thresholds()))
            messages.success(request, MSG_POLICY_SAVED)
            return redirect(request.path)
        status = 400
    context = {
        "model": model,
        "policy": policy,
        "own": model is None or policy.model_id == model.pk,
        "summary": _policy_summary(policy),
        "form": form,
        "thresholds": thresholds,
        "is_admin": admin,
    }
    return render(request, "registry/policy.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def model_policy(request: HttpRequest, name: str) -> HttpResponse:
    return _policy_page(request, selectors.model_for(request.user, name))


@require_http_methods(["GET", "POST"])
@role_required(*READERS)
def default_policy(request: HttpRequest) -> HttpResponse:
    return _policy_page(request, None)


# --- delivery metrics (admins) ---------------------------------------------------------------------


def _duration(hours: float | None) -> str | None:
    if hours is None:
        return None
    if hours < 1:
        return f"{round(hours * 60)} minutes"
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.1f} days"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _percent(share: float | None) -> str | None:
    return None if share is None else f"{share:.0%}"


def _figures(metrics: dict[str, Any], window_days: int) -> list[dict[str, Any]]:
    """The overall figures as cards: value (None → not enough data yet) and a plain explanation."""
    frequency = metrics["promotions_per_period"] if metrics["promotions"] else None
    return [
        {"key": "lead-time", "label": "Lead time to production", "value": _duration(metrics["lead_time_hours"]),
         "explain": f"Median time from registering a version to its first day in production "
                    f"({_plural(metrics['lead_time_versions'], 'version')})."},
        {"key": "frequency", "label": "Promotion frequency",
         "value": None if frequency is None else f"{frequency:.1f} per 30 days",
         "explain": f"Production promotions per 30 days over the last {window_days} days "
                    f"({_plural(metrics['promotions_in_window'], 'promotion')})."},
        {"key": "failure-rate", "label": "Change failure rate", "value": _percent(metrics["change_failure_rate"]),
         "explain": f"Share of production promotions later undone by a rollback "
                    f"({metrics['rolled_back']} of {metrics['promotions']})."},
        {"key": "recovery", "label": "Mean time to recovery", "value": _duration(metrics["recovery_hours"]),
         "explain": f"Mean time from a critical alert opening to its resolution "
                    f"({_plural(metrics['recovered_alerts'], 'resolved critical alert')})."},
        {"key": "in-production", "label": "Models in production", "value": _percent(metrics["production_share"]),
         "explain": f"Share of registered models with a version in production now "
                    f"({metrics['models_in_production']} of {metrics['models']})."},
    ]


@require_GET
@role_required(admin=True)
def delivery_metrics(request: HttpRequest) -> HttpResponse:
    metrics = delivery.delivery_metrics(selectors.models_visible_to(request.user))
    rows = [{**row, "lead_time": _duration(row["lead_time_hours"]), "recovery": _duration(row["recovery_hours"]),
             "failure_rate": _percent(row["change_failure_rate"])} for row in metrics["models"]]
    context = {"figures": _figures(metrics["overall"], metrics["window_days"]), "rows": rows,
               "window_days": metrics["window_days"], "since": metrics["now"] - timedelta(days=metrics["window_days"])}
    return render(request, "registry/delivery.html", context)

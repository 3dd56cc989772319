from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.notifications import unread_count
from opsportal import selectors, services
from opsportal.api import STATUS_CODES, error_response
from opsportal.models import WorkerPing
from opsportal.roles import ROLE_LABELS, Role, has_role, is_admin, role_required, user_roles

MSG_PING_QUEUED = "Worker check queued; this page updates when a worker answers."


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Menu entries for the signed-in user's roles (context processor)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "nav_roles": [], "nav_unread": 0}
    items = [("home", "Home", "house")]
    if has_role(user, Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER):
        items.append(("registry:list", "Models", "box-seam"))
        items.append(("scoring:jobs", "Scoring", "lightning"))
        items.append(("monitoring:alerts", "Alerts", "exclamation-triangle"))
        items.append(("feedback:list", "Campaigns", "megaphone"))
    if has_role(user, Role.DATA_SCIENTIST, Role.APPROVER):
        items.append(("retraining:runs", "Retraining", "arrow-repeat"))
    if has_role(user, Role.APPROVER):
        items.append(("accounts:audit", "Audit trail", "journal-check"))
    if has_role(user, Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER):
        items.append(("approvals:approvals", "Approvals", "check2-square"))
    items.append(("accounts:inbox", "Inbox", "bell"))
    items.append(("accounts:tokens", "API tokens", "key"))
    if is_admin(user):
        items.append(("accounts:webhooks", "Webhooks", "broadcast"))
        items.append(("system", "System", "cpu"))
    roles = [ROLE_LABELS[Role(r)] for r in sorted(user_roles(user))]
    if user.is_staff:
        roles.insert(0, "Admin")
    return {"nav_items": items, "nav_roles": roles, "nav_unread": unread_count(user)}


@require_GET
@role_required()
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "is_data_scientist": has_role(user, Role.DATA_SCIENTIST),
        "is_business_owner": has_role(user, Role.BUSINESS_OWNER),
        "is_approver": has_role(user, Role.APPROVER),
        "is_admin": is_admin(user),
        "has_no_role": not user_roles(user) and not user.is_staff,
    }
    return render(request, "home.html", context)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = selectors.health_report()
    report["status"] = "ok" if report["ok"] else "unavailable"
    return JsonResponse(report, status=200 if report["ok"] else 503)


@require_GET
@role_required(admin=True)
def system(request: HttpRequest) -> HttpResponse:
    context = {
        "health": selectors.health_report(),
        "heartbeats": selectors.worker_heartbeats(),
        "pings": selectors.worker_pings_recent(),
    }
    return render(request, "opsportal/system.html", context)


@require_POST
@role_required(admin=True)
def system_ping(request: HttpRequest) -> HttpResponse:
    services.worker_ping_request(user=request.user, ip=client_ip(request))
    messages.info(request, MSG_PING_QUEUED)
    return redirect("system")


@require_GET
@role_required(admin=True)
def system_ping_row(request: HttpRequest, pk: int) -> HttpResponse:
    ping = get_object_or_404(WorkerPing, pk=pk)
    return render(request, "opsportal/_ping_row.html", {"ping": ping})


def error_page(request: HttpRequest, status: int) -> HttpResponse:
    """403/404/500 for people; the JSON error body for API clients."""
    code, message = STATUS_CODES[status]
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        return error_response(status, code, message)
    return render(request, f"{status}.html", {"message": message}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    return error_page(request, 500)

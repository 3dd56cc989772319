from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.models import TokenScope
from opsportal.api import error_response
from opsportal.roles import Role, role_required
from opsportal.views import client_ip

MSG_TOKEN_REVOKED = "Token revoked. Programs using it can no longer sign in."
MSG_TOKEN_ALREADY_REVOKED = "That token was already revoked."
MSG_LOCKED_OUT = "Too many failed sign-in attempts; try again later."
EXPIRY_CHOICES = [(30, "30 days"), (90, "90 days"), (365, "1 year"), (0, "Never")]


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: object) -> HttpResponse:
    """What a locked-out sign-in gets: JSON for the API, a page for people."""
    if request.path.startswith("/api/"):
        return error_response(429, "locked_out", MSG_LOCKED_OUT)
    return render(request, "accounts/locked_out.html", status=429)


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: forms.Form) -> HttpResponse:
        response = super().form_valid(form)
        services.audit_record(actor=self.request.user, action="user.logged_in", ip=client_ip(self.request))
        return response


@require_POST
def logout_view(request: HttpRequest) -> HttpResponseRedirect:
    if request.user.is_authenticated:
        services.audit_record(actor=request.user, action="user.logged_out", ip=client_ip(request))
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("accounts:login")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. “laptop notebook” or “CRM sync”.")
    expires_in_days = forms.TypedChoiceField(choices=EXPIRY_CHOICES, coerce=int, initial=90, label="Expires after",
                                              widget=forms.Select(attrs={"class": "form-select"}))
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.FULL, label="Can do", required=False,
                              widget=forms.Select(attrs={"class": "form-select"}))


@require_http_methods(["GET", "POST"])
@role_required()
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        # The secret is rendered in this response only and never stored.
        token, raw = services.token_create(
            user=request.user, name=form.cleaned_data["name"],
            expires_in_days=form.cleaned_data["expires_in_days"] or None, ip=client_ip(request),
            scope=form.cleaned_data["scope"] or TokenScope.FULL,
        )
        created = {"token": token, "secret": raw}
        form = TokenForm()
    context = {"form": form, "created": created, "tokens": selectors.tokens_of(request.user)}
    return render(request, "accounts/tokens.html", context, status=201 if created else 200)


@require_POST
@role_required()
def token_revoke(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    token = get_object_or_404(selectors.tokens_of(request.user), pk=pk)
    if services.token_revoke(token=token, actor=request.user, ip=client_ip(request)):
        messages.success(request, MSG_TOKEN_REVOKED)
    else:
        messages.info(request, MSG_TOKEN_ALREADY_REVOKED)
    return redirect("accounts:tokens")


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=100)
    actor = forms.CharField(required=False, max_length=150)
    target_type = forms.CharField(required=False, max_length=100)
    target_id = forms.CharField(required=False, max_length=64)


@require_GET
@role_required(Role.APPROVER)
def audit(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    page = Paginator(selectors.audit_events(**filters), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "accounts/audit.html", {"form": form, "page": page, "query": query.urlencode()})

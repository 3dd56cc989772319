"""Pages: everyone's inbox; the admins' webhooks and their delivery logs."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import notifications
from opsportal.roles import role_required
from opsportal.views import client_ip

PAGE_SIZE = 50
MAX_IDS = 1000
MSG_MARKED_READ = "Marked {count} notification(s) read."
MSG_NOTHING_UNREAD = "Nothing to mark: those notifications were already read."
MSG_WEBHOOK_DELETED = "Webhook “{name}” deleted, with its delivery log."


def _posted_ids(request: HttpRequest) -> list[int]:
    return [int(v) for v in request.POST.getlist("id")[:MAX_IDS] if v.isdigit()]


@require_GET
@role_required()
def inbox(request: HttpRequest) -> HttpResponse:
    page = Paginator(notifications.notifications_of(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "unread": notifications.unread_count(request.user)}
    return render(request, "accounts/inbox.html", context)


@require_POST
@role_required()
def inbox_read(request: HttpRequest) -> HttpResponseRedirect:
    """`all=1` marks everything read; otherwise the posted `id` values."""
    mark_all = request.POST.get("all") == "1"
    count = notifications.notification_mark_read(
        user=request.user, ids=None if mark_all else _posted_ids(request), mark_all=mark_all, ip=client_ip(request)
    )
    if count:
        messages.success(request, MSG_MARKED_READ.format(count=count))
    else:
        messages.info(request, MSG_NOTHING_UNREAD)
    return redirect("accounts:inbox")


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What receives it, e.g. “Slack relay” or “CMDB”.")
    url = forms.URLField(max_length=500, label="URL", assume_scheme="https", help_text="http:// or https:// only.")
    events = forms.MultipleChoiceField(
        choices=list(notifications.EVENTS.items()), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Tick none to receive every event.",
    )


def _create_webhook(request: HttpRequest, form: WebhookForm) -> dict[str, object] | None:
    try:
        webhook, secret = notifications.webhook_create(admin=request.user, ip=client_ip(request), **form.cleaned_data)
    except notifications.NotificationError as exc:
        for field, errors in exc.details.items():
            form.add_error(field if field in form.fields else None, errors)
        return None
    return {"webhook": webhook, "secret": secret}


@require_http_methods(["GET", "POST"])
@role_required(admin=True)
def webhooks(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    created = _create_webhook(request, form) if request.method == "POST" and form.is_valid() else None
    if created:
        form = WebhookForm()  # the secret is rendered in this response only
    context = {
        "form": form, "created": created, "webhooks": notifications.webhooks_with_counts(),
        "events": notifications.EVENTS,
    }
    return render(request, "accounts/webhooks.html", context, status=201 if created else 200)


@require_POST
@role_required(admin=True)
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    webhook = get_object_or_404(notifications.webhooks(), pk=pk)
    notifications.webhook_delete(admin=request.user, webhook=webhook, ip=client_ip(request))
    messages.success(request, MSG_WEBHOOK_DELETED.format(name=webhook.name))
    return redirect("accounts:webhooks")


@require_GET
@role_required(admin=True)
def webhook_deliveries(request: HttpRequest, pk: int) -> HttpResponse:
    webhook = get_object_or_404(notifications.webhooks(), pk=pk)
    page = Paginator(notifications.deliveries_of(webhook), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/webhook_deliveries.html", {"webhook": webhook, "page": page})

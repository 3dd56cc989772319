"""Admin: every change made here is written to the audit trail; the trail itself is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from accounts import services
from accounts.models import ApiToken, AuditEvent


class AuditedAdminMixin:
    """Mirror Django admin's change log into the hash-chained audit trail."""

    def _audit(self, request: HttpRequest, obj: Model, verb: str, message: Any) -> None:
        services.audit_record(
            actor=request.user, action=f"admin.{obj._meta.model_name}.{verb}", target=obj,
            payload={"change": str(message)}, ip=request.META.get("REMOTE_ADDR"),
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, obj, "added", message)
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, obj, "changed", message)
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: QuerySet) -> Any:
        for obj in queryset:
            self._audit(request, obj, "deleted", "")
        return super().log_deletions(request, queryset)  # type: ignore[misc]


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "created_at", "actor_label", "action", "target_type", "target_id", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_label", "action", "target_id", "target_label"]
    actions = None


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "user", "key_prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "key_prefix"]
    actions = ["revoke"]

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = sum(
            services.token_revoke(token=t, actor=request.user, ip=request.META.get("REMOTE_ADDR")) for t in queryset
        )
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)


def _reregister(model: type[Model], base: type[admin.ModelAdmin]) -> None:
    admin.site.unregister(model)
    admin.site.register(model, type(base.__name__, (AuditedAdminMixin, base), {}))


_reregister(User, UserAdmin)
_reregister(Group, GroupAdmin)
_reregister(PeriodicTask, beat_admin.PeriodicTaskAdmin)
_reregister(IntervalSchedule, admin.ModelAdmin)
_reregister(CrontabSchedule, beat_admin.CrontabScheduleAdmin)
_reregister(SolarSchedule, admin.ModelAdmin)
_reregister(ClockedSchedule, beat_admin.ClockedScheduleAdmin)

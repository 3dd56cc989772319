from __future__ import annotations

from django.contrib import admin

from opsportal.models import WorkerHeartbeat, WorkerPing


@admin.register(WorkerPing)
class WorkerPingAdmin(admin.ModelAdmin):
    list_display = ["id", "requested_by", "requested_at", "answered_at", "worker_hostname"]
    readonly_fields = ["requested_by", "requested_at", "answered_at", "worker_hostname", "worker_pid"]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "beat_at"]

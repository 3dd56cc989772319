from __future__ import annotations

from django.conf import settings
from django.db import models


class WorkerPing(models.Model):
    """A round trip through the broker, asked for from the system page."""

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"ping #{self.pk}"

    @property
    def round_trip_seconds(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.answered_at - self.requested_at).total_seconds()


class WorkerHeartbeat(models.Model):
    """Last beat per worker host, written by the scheduled heartbeat task."""

    hostname = models.CharField(max_length=255, unique=True)
    beat_at = models.DateTimeField()

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return self.hostname

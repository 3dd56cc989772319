"""Monitoring tables: alerts (rules, runs and reports come with the monitoring feature)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class AlertKind(models.TextChoices):
    DRIFT = "drift", "Data drift"
    DATA_QUALITY = "data_quality", "Data quality"
    PERFORMANCE = "performance", "Model performance"
    SERVICE = "service", "Service health"
    UPLIFT = "uplift", "Campaign uplift"
    RETRAINING = "retraining", "Retraining"
    OTHER = "other", "Other"


class Alert(models.Model):
    """A condition on a model that people must act on. Open critical alerts block promotion."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="alerts")
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    kind = models.CharField(max_length=16, choices=AlertKind.choices, default=AlertKind.OTHER)
    # What condition this alert stands for: one open alert per (model, key) while it holds.
    key = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["model", "status", "severity"])]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "key"],
                condition=~models.Q(status="resolved") & ~models.Q(key=""),
                name="monitoring_alert_one_open_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.severity}: {self.title}"

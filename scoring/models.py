"""Scoring tables: the prediction log (batch jobs come with batch scoring)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PredictionSource(models.TextChoices):
    REALTIME = "realtime", "Real-time"
    SHADOW = "shadow", "Shadow"
    BATCH = "batch", "Batch"


class PredictionLog(models.Model):
    """One scored row: what went in, what came out, which version, how fast. Joined later with labels."""

    created_at = models.DateTimeField()
    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    request_id = models.UUIDField()
    entity_id = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=16, choices=PredictionSource.choices, default=PredictionSource.REALTIME)
    features = models.JSONField()
    prediction = models.JSONField()
    probabilities = models.JSONField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Positive-class probability, or the predicted value.")
    latency_ms = models.FloatField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["version", "created_at"]),
            models.Index(fields=["model", "created_at"]),
            models.Index(fields=["model", "entity_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} row {self.entity_id}"


class ChallengerMode(models.TextChoices):
    OFF = "off", "Off"
    SHADOW = "shadow", "Shadow (scored, logged, never returned)"
    CANARY = "canary", "Canary (a share of traffic, sticky per entity)"


class ScoringConfig(models.Model):
    """How a model's challenger takes part in real-time traffic."""

    model = models.OneToOneField("registry.RegisteredModel", on_delete=models.CASCADE, related_name="scoring_config")
    challenger_mode = models.CharField(max_length=16, choices=ChallengerMode.choices, default=ChallengerMode.OFF)
    canary_percent = models.PositiveSmallIntegerField(default=0, help_text="0 to 100, for canary mode.")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.CheckConstraint(condition=models.Q(canary_percent__lte=100), name="scoring_canary_percent_range")
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.challenger_mode}"

"""Business feedback tables: ground-truth labels (campaigns and outcomes come with the feedback loops)."""

from __future__ import annotations

from django.db import models


class Label(models.Model):
    """The true outcome for one entity a model scored, joined to the prediction log by `entity_id`."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="labels")
    entity_id = models.CharField(max_length=200)
    label = models.JSONField(help_text="The true class (classifiers) or value (regressors).")
    observed_at = models.DateTimeField(help_text="When the outcome happened (defaults to upload time).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-observed_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["model", "entity_id"], name="feedback_label_unique_entity")]
        indexes = [models.Index(fields=["model", "observed_at"])]

    def __str__(self) -> str:
        return f"{self.model_id}:{self.entity_id}={self.label}"

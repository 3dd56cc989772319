"""Retraining tables: one training recipe per registered model, and its runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RecipeKind(models.TextChoices):
    BUILTIN = "builtin", "Built-in scikit-learn recipe"
    FUNCTION = "function", "Registered training function"


class DataSource(models.TextChoices):
    DATASET = "dataset", "An uploaded dataset"
    PREDICTIONS = "predictions", "Logged predictions joined with their labels"


class PromotionGoal(models.TextChoices):
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class TrainingRecipe(models.Model):
    """How a model is retrained: estimator or function, data, split, triggers. Edited in the UI."""

    model = models.OneToOneField("registry.RegisteredModel", on_delete=models.CASCADE, related_name="training_recipe")
    kind = models.CharField(max_length=16, choices=RecipeKind.choices, default=RecipeKind.BUILTIN)
    estimator = models.CharField(max_length=64, blank=True, help_text="Allow-listed scikit-learn estimator.")
    hyperparameters = models.JSONField(default=dict, blank=True)
    function_path = models.CharField(max_length=200, blank=True, help_text="From settings.RETRAINING_FUNCTIONS.")

    data_source = models.CharField(max_length=16, choices=DataSource.choices, default=DataSource.DATASET)
    dataset_key = models.CharField(max_length=200, blank=True)
    dataset_sha256 = models.CharField(max_length=64, blank=True)
    dataset_format = models.CharField(max_length=16, blank=True)
    dataset_filename = models.CharField(max_length=255, blank=True, help_text="Shown only; never used as a path.")
    window_days = models.PositiveIntegerField(default=90, help_text="Logged predictions of the last N days.")
    target_column = models.CharField(max_length=200)
    # Time split: rows at or after the cutoff are held out; without a cutoff, the latest fraction
    # (ordered by the split column, or by file order when no column is named).
    split_column = models.CharField(max_length=200, blank=True)
    split_cutoff = models.DateTimeField(null=True, blank=True)
    holdout_fraction = models.FloatField(default=0.2)

    trigger_on_drift = models.BooleanField(default=False)
    trigger_on_performance = models.BooleanField(default=False)
    trigger_on_uplift = models.BooleanField(default=False)
    trigger_new_labels = models.PositiveIntegerField(null=True, blank=True, help_text="Run after N new labels.")
    schedule = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cron = models.CharField(max_length=100, blank=True, help_text="Five crontab fields, empty for no schedule.")
    promotion_target = models.CharField(max_length=16, choices=PromotionGoal.choices, default=PromotionGoal.PRODUCTION)
    enabled = models.BooleanField(default=True)

    # The person accountable for what the recipe trains: registers its versions and requests their
    # promotion, so the four-eyes rule keeps them from approving those requests themselves.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(holdout_fraction__gt=0) & models.Q(holdout_fraction__lt=1),
                name="retraining_holdout_fraction_range",
            )
        ]

    def __str__(self) -> str:
        return f"recipe for {self.model}"

    @property
    def alert_kinds(self) -> set[str]:
        flags = {"drift": self.trigger_on_drift, "performance": self.trigger_on_performance,
                 "uplift": self.trigger_on_uplift}
        return {kind for kind, on in flags.items() if on}


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class Trigger(models.TextChoices):
    MANUAL = "manual", "Manual (page)"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    ALERT = "alert", "Alert"
    LABELS = "labels", "New labels"


class RetrainingRun(models.Model):
    """One training of a challenger. At most one queued or running run per model (database constraint)."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="retraining_runs")
    recipe = models.ForeignKey(TrainingRecipe, null=True, on_delete=models.SET_NULL, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    trigger_detail = models.CharField(max_length=300, blank=True)
    alert = models.ForeignKey("monitoring.Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    log = models.TextField(blank=True)
    recipe_snapshot = models.JSONField(default=dict, blank=True)

    data_fingerprint = models.CharField(max_length=64, blank=True)
    training_rows = models.PositiveIntegerField(null=True, blank=True)
    holdout_rows = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="The challenger's metrics on the held-out rows.")
    comparison = models.JSONField(default=dict, blank=True, help_text="Challenger and champion on the same rows.")
    gate_results = models.JSONField(default=list, blank=True)

    champion = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    produced_version = models.OneToOneField(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="retraining_run"
    )
    promotion_request = models.ForeignKey(
        "registry.PromotionRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    auto_promoted = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Overlapping triggers (two beat schedulers, an alert during a scheduled run) give one run.
            models.UniqueConstraint(
                fields=["model"], condition=models.Q(status__in=["queued", "running"]),
                name="retraining_one_active_run_per_model",
            )
        ]
        indexes = [models.Index(fields=["status", "started_at"])]

    def __str__(self) -> str:
        return f"retraining run #{self.pk} of {self.model}"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

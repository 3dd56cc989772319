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


# --- reference profiles, runs, per-feature results -------------------------------------------------


class ProfileStatus(models.TextChoices):
    PENDING = "pending", "Being computed"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ReferenceProfile(models.Model):
    """Per column of a version's reference data: what later data is compared against.

    `columns` holds the human-readable summary (missing rate, range, quantiles,
    histogram, category shares); the exact comparison data (sorted values,
    category counts, reference predictions) is an .npz file in artifact storage.
    """

    version = models.OneToOneField("registry.ModelVersion", on_delete=models.CASCADE, related_name="reference_profile")
    status = models.CharField(max_length=16, choices=ProfileStatus.choices, default=ProfileStatus.PENDING)
    status_reason = models.TextField(blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.JSONField(default=list, blank=True)
    prediction = models.JSONField(default=dict, blank=True, help_text="Summary of the model's reference predictions.")
    data_key = models.CharField(max_length=200, blank=True)
    data_sha256 = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"profile of {self.version_id} ({self.status})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "On demand"


class RunSource(models.TextChoices):
    LOG = "log", "Prediction log window"
    UPLOAD = "upload", "Uploaded dataset"


class MonitoringRun(models.Model):
    """One comparison of current data with a version's reference profile."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="monitoring_runs")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="monitoring_runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.TextField(blank=True)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.MANUAL)
    source = models.CharField(max_length=16, choices=RunSource.choices, default=RunSource.LOG)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    current_key = models.CharField(max_length=200, blank=True)
    current_sha256 = models.CharField(max_length=64, blank=True)
    current_format = models.CharField(max_length=16, blank=True)
    current_filename = models.CharField(max_length=255, blank=True, help_text="Shown only; never used as a path.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rows_reference = models.PositiveIntegerField(null=True, blank=True)
    rows_current = models.PositiveIntegerField(null=True, blank=True)
    columns_total = models.PositiveIntegerField(null=True, blank=True)
    columns_drifted = models.PositiveIntegerField(null=True, blank=True)
    drift_share = models.FloatField(null=True, blank=True)
    dataset_drift = models.BooleanField(null=True, blank=True)
    prediction_drift = models.JSONField(default=dict, blank=True)
    data_quality = models.JSONField(default=dict, blank=True)
    performance = models.JSONField(default=dict, blank=True, help_text="Realized, once labels arrived.")
    estimated_performance = models.JSONField(default=dict, blank=True, help_text="From the model's probabilities.")
    service = models.JSONField(default=dict, blank=True, help_text="Volume, error rate, latency percentiles.")
    report_key = models.CharField(max_length=200, blank=True)
    report_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "created_at"]), models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"monitoring run #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)


class FeatureDrift(models.Model):
    """One column of one run: Evidently's default method, its threshold and verdict, plus data quality."""

    run = models.ForeignKey(MonitoringRun, on_delete=models.CASCADE, related_name="features")
    column = models.CharField(max_length=200)
    kind = models.CharField(max_length=16)
    method = models.CharField(max_length=32)
    method_label = models.CharField(max_length=64)
    threshold = models.FloatField()
    score = models.FloatField(null=True, blank=True)
    drifted = models.BooleanField()
    reference_rows = models.PositiveIntegerField()
    current_rows = models.PositiveIntegerField()
    missing_reference = models.FloatField(default=0.0)
    missing_current = models.FloatField(default=0.0)
    out_of_range = models.PositiveIntegerField(default=0)
    unseen_categories = models.JSONField(default=list, blank=True)
    unseen_count = models.PositiveIntegerField(default=0)
    type_errors = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run", "column"]
        constraints = [models.UniqueConstraint(fields=["run", "column"], name="monitoring_feature_once_per_run")]

    def __str__(self) -> str:
        return f"{self.column} in run {self.run_id}"


class MonitoringSchedule(models.Model):
    """How often a model's live versions are checked; backed by a django-celery-beat periodic task."""

    model = models.OneToOneField(
        "registry.RegisteredModel", on_delete=models.CASCADE, related_name="monitoring_schedule"
    )
    every_hours = models.PositiveIntegerField(default=24)
    window_hours = models.PositiveIntegerField(default=24, help_text="How much of the prediction log each run reads.")
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        constraints = [models.CheckConstraint(condition=models.Q(every_hours__gte=1), name="monitoring_every_hour")]

    def __str__(self) -> str:
        return f"{self.model}: every {self.every_hours} h"


class Comparison(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", "≥"
    LT = "lt", "<"
    LTE = "lte", "≤"


class RuleMetric(models.TextChoices):
    DRIFT_SHARE = "drift_share", "Share of drifted features"
    PREDICTION_DRIFT = "prediction_drift", "Prediction drift (1 = drifted)"
    MISSING_INCREASE = "missing_increase", "Largest missing-rate increase"
    UNSEEN_SHARE = "unseen_share", "Largest share of unseen categories"
    OUT_OF_RANGE_SHARE = "out_of_range_share", "Largest share of out-of-range values"
    TYPE_ERROR_SHARE = "type_error_share", "Largest share of type errors"
    AUC = "auc", "AUC (realized)"
    ACCURACY = "accuracy", "Accuracy (realized)"
    F1 = "f1", "F1 (realized)"
    ESTIMATED_AUC = "estimated_auc", "AUC (estimated)"
    ESTIMATED_ACCURACY = "estimated_accuracy", "Accuracy (estimated)"
    MAE = "mae", "MAE (realized)"
    RMSE = "rmse", "RMSE (realized)"
    R2 = "r2", "R² (realized)"
    ERROR_RATE = "error_rate", "Error rate"
    LATENCY_P95 = "latency_p95_ms", "p95 latency (ms)"
    VOLUME = "volume", "Request volume"


class AlertRule(models.Model):
    """A condition on a run's figures that opens an alert; `window_runs` consecutive runs must breach it."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="alert_rules")
    metric = models.CharField(max_length=32, choices=RuleMetric.choices)
    comparison = models.CharField(max_length=8, choices=Comparison.choices)
    threshold = models.FloatField()
    window_runs = models.PositiveIntegerField(default=1, help_text="Consecutive runs that must breach the rule.")
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "metric", "id"]
        constraints = [models.CheckConstraint(condition=models.Q(window_runs__gte=1), name="monitoring_rule_window")]

    def __str__(self) -> str:
        return f"{self.model}: {self.metric} {self.get_comparison_display()} {self.threshold:g}"

    @property
    def key(self) -> str:
        """The alert key: one open alert per rule."""
        return f"rule:{self.pk}"

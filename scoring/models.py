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
    # No single-column indexes on the keys: the composite indexes below lead with them and serve the same
    # lookups (cascades, joins), and every index is one more B-tree written per logged prediction.
    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="+", db_index=False)
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+", db_index=False)
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


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Finished with row errors"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ScoringJob(models.Model):
    """A file scored in chunks by workers; each chunk stores its rows' results as one part (see ScoringChunk)."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="scoring_jobs")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="scoring_jobs")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    status_reason = models.TextField(blank=True)
    input_key = models.CharField(max_length=200)
    input_sha256 = models.CharField(max_length=64)
    input_format = models.CharField(max_length=16)
    input_filename = models.CharField(max_length=255, blank=True)
    plan_key = models.CharField(max_length=200, blank=True, help_text="The input as Parquet, one row group a chunk.")
    plan_sha256 = models.CharField(max_length=64, blank=True)
    id_column = models.CharField(max_length=200, blank=True)
    chunk_size = models.PositiveIntegerField(default=5000)
    max_error_rate = models.FloatField(default=0.05)
    log_predictions = models.BooleanField(default=False)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    unseen_categories = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"job #{self.pk} ({self.model})"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED)


class ScoringChunk(models.Model):
    """Rows [start_row, end_row) of a job, and where their results are once it is done.

    A row's result exists only in the results part of the one chunk covering it, and a part is
    attached in the same UPDATE that sets the done flag: that is what "each row exactly once"
    rests on. No two chunks of a job cover the same row: on PostgreSQL an exclusion constraint over
    (job, int8range(start_row, end_row)) enforces the unique (job, row) key (migration 0005); the
    check below forbids a done chunk without its part.
    """

    job = models.ForeignKey(ScoringJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    start_row = models.PositiveIntegerField()
    end_row = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Every row of the chunk as Parquet (row, id, prediction, probabilities, score, error), by content.
    results_key = models.CharField(max_length=200, blank=True)
    results_sha256 = models.CharField(max_length=64, blank=True)
    # The scored rows again as lines of the results CSV: the download joins them as they are.
    export_key = models.CharField(max_length=200, blank=True)
    export_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="scoring_unique_chunk"),
            models.CheckConstraint(condition=models.Q(end_row__gte=models.F("start_row")),
                                   name="scoring_chunk_rows_ordered"),
            models.CheckConstraint(condition=~models.Q(status="done") | ~models.Q(results_key=""),
                                   name="scoring_done_chunk_has_results"),
        ]
        indexes = [models.Index(fields=["status", "started_at"])]

    def __str__(self) -> str:
        return f"{self.job} chunk {self.index}"

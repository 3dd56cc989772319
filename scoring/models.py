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
    """A file scored in chunks by workers; results land in ScoringResult, one row per input row."""

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
    job = models.ForeignKey(ScoringJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    start_row = models.PositiveIntegerField()
    end_row = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The chunk's scored rows as lines of the results CSV, stored with the done flag: the download
    # joins them instead of formatting every row again (ScoringResult stays the record of each row).
    export_key = models.CharField(max_length=200, blank=True)
    export_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="scoring_unique_chunk")]
        indexes = [models.Index(fields=["status", "started_at"])]

    def __str__(self) -> str:
        return f"{self.job} chunk {self.index}"


class ScoringResult(models.Model):
    """One input row's outcome. (job, row_number) is unique: a row is written exactly once.

    The job link is not a database-enforced foreign key, and has no index of its own (the unique
    index starts with the job): PostgreSQL checks a foreign key with one query per inserted row,
    which cost more than the rest of a chunk's COPY together. Rows are only ever written by
    `batch.chunk_run`, in the transaction that updates their job's counters (so the job exists and
    is locked), and the ORM still deletes them with their job.
    """

    job = models.ForeignKey(ScoringJob, on_delete=models.CASCADE, related_name="results", db_constraint=False,
                            db_index=False)
    row_number = models.PositiveIntegerField()
    entity_id = models.CharField(max_length=200, blank=True)
    prediction = models.JSONField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "row_number"]
        constraints = [models.UniqueConstraint(fields=["job", "row_number"], name="scoring_row_once")]

    def __str__(self) -> str:
        return f"{self.job} row {self.row_number}"

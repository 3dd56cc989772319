"""Business feedback tables: ground-truth labels, campaigns with holdouts, their audiences, outcomes,
the cached analysis, and what business owners said about the result."""

from __future__ import annotations

from django.conf import settings
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


# --- campaigns ------------------------------------------------------------------------------------


class Targeting(models.TextChoices):
    TOP_N = "top_n", "The N highest scores"
    THRESHOLD = "threshold", "Every score at or above a threshold"
    ALL = "all", "Everyone in the list"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft (no audience yet)"
    RUNNING = "running", "Audience assigned"


class Campaign(models.Model):
    """An action taken on the entities a model picked, measured against a randomized holdout."""

    name = models.CharField(max_length=200)
    description = models.TextField(help_text="The action, e.g. “a retention email with a 10% discount”.")
    business_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_campaigns"
    )
    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.PROTECT, related_name="campaigns")
    # Either a fixed version, or an alias resolved (and then stored in `version`) when the audience is built.
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    alias = models.CharField(max_length=16, blank=True)
    targeting = models.CharField(max_length=16, choices=Targeting.choices, default=Targeting.ALL)
    target_count = models.PositiveIntegerField(null=True, blank=True)
    score_threshold = models.FloatField(null=True, blank=True)
    holdout_share = models.FloatField(default=0.1)
    seed = models.CharField(max_length=64, help_text="Salt of the assignment hash: same seed, same groups.")
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    # Bumped by every change to the audience or outcomes; the cached analysis records the one it saw.
    data_version = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(holdout_share__gte=0) & models.Q(holdout_share__lt=1),
                name="feedback_campaign_holdout_share_range",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Arm(models.Model):
    """One group of a campaign: a treatment, or the holdout that gets nothing."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=100)
    is_holdout = models.BooleanField(default=False)
    share = models.FloatField(help_text="Expected share of the audience (the SRM check compares against it).")

    class Meta:
        ordering = ["campaign", "is_holdout", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="feedback_arm_unique_name"),
            models.UniqueConstraint(
                fields=["campaign"], condition=models.Q(is_holdout=True), name="feedback_arm_one_holdout"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class KpiKind(models.TextChoices):
    BINARY = "binary", "Yes/no (a rate)"
    NUMERIC = "numeric", "Amount (a mean)"


class Kpi(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="kpis")
    name = models.CharField(max_length=64, help_text="As written in outcome files, e.g. churned_90d.")
    label = models.CharField(max_length=200, blank=True, help_text="Plain words, e.g. “90-day churn”.")
    kind = models.CharField(max_length=16, choices=KpiKind.choices, default=KpiKind.BINARY)
    direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.HIGHER)
    value_per_unit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    is_primary = models.BooleanField(default=False)
    # Entities of the audience without an outcome row count as 0 (e.g. "converted" files list converters only).
    missing_as_zero = models.BooleanField(default=False)

    class Meta:
        ordering = ["campaign", "-is_primary", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="feedback_kpi_unique_name"),
            models.UniqueConstraint(
                fields=["campaign"], condition=models.Q(is_primary=True), name="feedback_kpi_one_primary"
            ),
        ]

    def __str__(self) -> str:
        return self.label or self.name

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")


class Assignment(models.Model):
    """Which group one entity of the audience is in, with the score and version that put it there."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    entity_id = models.CharField(max_length=200)
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="assignments")
    score = models.FloatField(null=True, blank=True)
    decile = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 = the highest scores.")
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "entity_id"], name="feedback_assignment_unique_entity")
        ]
        indexes = [models.Index(fields=["campaign", "arm", "decile"])]

    def __str__(self) -> str:
        return f"{self.entity_id} → {self.arm_id}"


class Outcome(models.Model):
    """One KPI value of one entity. Arm and decile are copied from its assignment when it lands, so the
    analysis is one GROUP BY over this table (assignments cannot change once outcomes exist)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="outcomes")
    entity_id = models.CharField(max_length=200)
    kpi = models.ForeignKey(Kpi, on_delete=models.CASCADE, related_name="outcomes")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="outcomes")
    decile = models.PositiveSmallIntegerField(null=True, blank=True)
    value = models.FloatField()
    observed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "entity_id", "kpi"], name="feedback_outcome_unique")
        ]
        indexes = [models.Index(fields=["campaign", "kpi", "arm", "decile"])]

    def __str__(self) -> str:
        return f"{self.entity_id}.{self.kpi_id}={self.value}"


class UploadStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class OutcomeUpload(models.Model):
    """One outcome file or API call: how far it got and which rows were refused (first ones kept)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="uploads")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    filename = models.CharField(max_length=255, blank=True)
    file_key = models.CharField(max_length=200, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=UploadStatus.choices, default=UploadStatus.QUEUED)
    status_reason = models.TextField(blank=True)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"upload #{self.pk} of {self.campaign}"

    @property
    def is_finished(self) -> bool:
        return self.status in (UploadStatus.DONE, UploadStatus.FAILED)

    @property
    def percent(self) -> float:
        if not self.total_rows:
            return 100.0 if self.is_finished else 0.0
        return round(100 * (self.rows_done + self.rows_failed) / self.total_rows, 1)


class CampaignAnalysis(models.Model):
    """The latest analysis of a campaign, computed in the database by a worker after outcomes land."""

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="analysis")
    result = models.JSONField()
    data_version = models.PositiveIntegerField()
    computed_at = models.DateTimeField()
    duration_ms = models.FloatField()

    class Meta:
        ordering = ["-computed_at"]
        verbose_name_plural = "campaign analyses"

    def __str__(self) -> str:
        return f"analysis of {self.campaign}"


class CampaignComment(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="comments")
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="campaign_comments"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment by {self.author} on {self.campaign}"


class SignOffDecision(models.TextChoices):
    ACCEPT = "accept", "Accept the result"
    REJECT = "reject", "Reject the result"


class CampaignSignOff(models.Model):
    """A business owner's verdict on a campaign's result, kept with the analysis they saw."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sign_offs")
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="campaign_sign_offs"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=16, choices=SignOffDecision.choices)
    reason = models.TextField()
    summary = models.TextField(blank=True, help_text="The headline of the analysis at sign-off time.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} {self.decision}s {self.campaign}"

"""Model registry tables: registered models, their immutable versions, aliases and trust settings."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models


class Task(models.TextChoices):
    BINARY = "binary_classification", "Binary classification"
    MULTICLASS = "multiclass_classification", "Multiclass classification"
    REGRESSION = "regression", "Regression"


class VersionStatus(models.TextChoices):
    VALIDATING = "validating", "Validating"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Stage(models.TextChoices):
    NONE = "none", "None"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


class ArtifactFormat(models.TextChoices):
    SKOPS = "skops", "skops"
    ONNX = "onnx", "ONNX"
    PICKLE = "pickle", "pickle / joblib"


class Engine(models.TextChoices):
    SKLEARN = "sklearn", "scikit-learn"
    ONNX = "onnx", "ONNX Runtime"


class AliasName(models.TextChoices):
    CHAMPION = "champion", "Champion"
    CHALLENGER = "challenger", "Challenger"


# Page paths under /models/ that a model name must not shadow.
RESERVED_NAMES = ("new", "safety", "policy", "delivery")

slug_validator = RegexValidator(
    r"^(?!(?:new|safety|policy|delivery)$)[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
    "Use 1 to 64 lower-case letters, digits and hyphens, starting and ending with a letter or digit "
    "(not “new”, “safety”, “policy” or “delivery”).",
)


class RegisteredModel(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    task = models.CharField(max_length=32, choices=Task.choices)
    description = models.TextField(blank=True)
    business_objective = models.TextField(blank=True)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="models")
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="owned_models", blank=True)
    # A labelled holdout the gates score candidate and champion on (optional).
    evaluation_key = models.CharField(max_length=200, blank=True)
    evaluation_sha256 = models.CharField(max_length=64, blank=True)
    evaluation_format = models.CharField(max_length=16, blank=True)
    evaluation_target = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelTag(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tags")
    tag = models.CharField(max_length=50, validators=[slug_validator])

    class Meta:
        ordering = ["tag"]
        constraints = [models.UniqueConstraint(fields=["model", "tag"], name="registry_unique_model_tag")]

    def __str__(self) -> str:
        return self.tag


class ModelVersion(models.Model):
    """One registered artifact. Artifact, format and signature never change after registration."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.VALIDATING)
    status_reason = models.TextField(blank=True)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.NONE)

    # the artifact, content-addressed
    format = models.CharField(max_length=16, choices=ArtifactFormat.choices)
    artifact_key = models.CharField(max_length=200)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.PositiveBigIntegerField()
    original_filename = models.CharField(max_length=255, blank=True, help_text="Shown only; never used as a path.")
    framework = models.CharField(max_length=50, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)

    # what goes in and comes out
    signature = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)

    # data it was trained on and is compared against
    reference_key = models.CharField(max_length=200, blank=True)
    reference_sha256 = models.CharField(max_length=64, blank=True)
    reference_format = models.CharField(max_length=16, blank=True)
    reference_rows = models.PositiveIntegerField(null=True, blank=True)
    target_column = models.CharField(max_length=200, blank=True)
    training_data_fingerprint = models.CharField(max_length=64, blank=True)
    training_data_description = models.TextField(blank=True)

    # model card
    description = models.TextField(blank=True)
    intended_use = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    source_code_ref = models.CharField(max_length=500, blank=True)

    # lineage
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")

    # validation results
    untrusted_types = models.JSONField(default=list, blank=True)
    trained_sklearn_version = models.CharField(max_length=32, blank=True)
    version_mismatch_accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    validation = models.JSONField(default=dict, blank=True, help_text="Timings, memory, smoke-test details.")
    feature_importance = models.JSONField(default=list, blank=True)
    engine = models.CharField(max_length=16, choices=Engine.choices, blank=True)
    engine_reason = models.TextField(blank=True)
    onnx_key = models.CharField(max_length=200, blank=True)
    onnx_sha256 = models.CharField(max_length=64, blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    validation_attempts = models.PositiveIntegerField(default=0)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="registry_unique_version_number"),
            models.UniqueConstraint(
                fields=["model"], condition=models.Q(stage="production"), name="registry_one_production_version"
            ),
        ]
        indexes = [models.Index(fields=["model", "artifact_sha256"])]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def input_columns(self) -> list[str]:
        return [column["name"] for column in self.signature.get("inputs", [])]


class ModelAlias(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=16, choices=AliasName.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="registry_unique_alias")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class TrustedType(models.Model):
    """A type an admin trusts skops to load, beyond skops' own defaults."""

    name = models.CharField(max_length=255, unique=True)
    reason = models.TextField()
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for the reviewed defaults OpsPortal ships with.",
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RegistryPolicy(models.Model):
    """Registry-wide switches admins control (one row)."""

    allow_pickle = models.BooleanField(
        default=False, help_text="Accept pickle/joblib artifacts (loaded only inside the sandboxed worker)."
    )
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "registry policy"

    def __str__(self) -> str:
        return "Registry policy"


# --- governance: policies, promotion requests, decisions, stage history -------------------------


class PromotionTarget(models.TextChoices):
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class RequestStatus(models.TextChoices):
    OPEN = "open", "Open"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"
    SUPERSEDED = "superseded", "Superseded"


class GatesStatus(models.TextChoices):
    EVALUATING = "evaluating", "Evaluating"
    PASSED = "passed", "All gates pass"
    FAILED = "failed", "Some gates fail"


def default_required_approvals() -> dict[str, dict[str, int]]:
    return {"staging": {"approver": 1}, "production": {"approver": 1}}


def default_gates() -> dict[str, object]:
    return {
        "validation_passed": True,
        "metric_thresholds": {},
        "beats_champion": {"enabled": True, "tolerance": 0.0},
        "signature_compatible": True,
        "no_critical_alerts": True,
        "fairness": None,
        "model_card_complete": ["description", "intended_use"],
    }


class ApprovalPolicy(models.Model):
    """Who must approve a promotion and which automated gates apply. `model=None` is the global default."""

    model = models.OneToOneField(
        RegisteredModel, null=True, blank=True, on_delete=models.CASCADE, related_name="approval_policy"
    )
    required_approvals = models.JSONField(
        default=default_required_approvals,
        help_text='Per target, approvals needed per role, e.g. {"production": {"approver": 1, "business_owner": 1}}.',
    )
    allow_requester_approval = models.BooleanField(default=False)
    allow_author_approval = models.BooleanField(default=False)
    gates = models.JSONField(default=default_gates)
    auto_promote = models.BooleanField(default=False, help_text="Retraining may promote without people (off).")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["model"], condition=models.Q(model__isnull=True), name="registry_one_default_policy"
            )
        ]
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        return f"policy for {self.model.name}" if self.model_id else "default policy"


class PromotionRequest(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotion_requests")
    target = models.CharField(max_length=16, choices=PromotionTarget.choices)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.OPEN)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    gates_status = models.CharField(max_length=16, choices=GatesStatus.choices, default=GatesStatus.EVALUATING)
    gate_results = models.JSONField(default=list, blank=True, help_text="Latest evaluation, one entry per gate.")
    gates_at_open = models.JSONField(default=list, blank=True)
    gates_evaluated_at = models.DateTimeField(null=True, blank=True)
    evaluation = models.JSONField(default=dict, blank=True, help_text="Measured metrics of candidate and champion.")
    champion_at_evaluation = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "target"], condition=models.Q(status="open"), name="registry_one_open_request"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} → {self.target}"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class Approval(models.Model):
    """One person's decision on a request, counted for one role of the policy."""

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=32)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="registry_one_decision_per_person")]

    def __str__(self) -> str:
        return f"{self.user} {self.decision}s {self.request}"


class PromotionComment(models.Model):
    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment by {self.author} on {self.request}"


class GateOverride(models.Model):
    """An admin's written decision to let a failing gate pass for one version. Shown forever on it."""

    request = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="overrides")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="gate_overrides")
    gate = models.CharField(max_length=50)
    measured = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    admin = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "gate"], name="registry_one_override_per_gate")]

    def __str__(self) -> str:
        return f"override of {self.gate} on {self.version}"


class TransitionKind(models.TextChoices):
    PROMOTION = "promotion", "Promotion"
    ROLLBACK = "rollback", "Rollback"
    ARCHIVED = "archived", "Archived"


class StageTransition(models.Model):
    """Every stage change, so "what was in production at time T, approved by whom" has an answer."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="stage_transitions")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="stage_transitions")
    from_stage = models.CharField(max_length=16, choices=Stage.choices)
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    kind = models.CharField(max_length=16, choices=TransitionKind.choices)
    request = models.ForeignKey(PromotionRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.version}: {self.from_stage} → {self.to_stage}"

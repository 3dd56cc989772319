"""Registry REST operations: one view per operation, nested Input/Output serializers."""

from __future__ import annotations

import math
from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.api import ApiError, Pagination
from opsportal.roles import IsAdmin, Role, role_permission
from registry import promotions, selectors, services
from registry.models import (
    ApprovalPolicy,
    ArtifactFormat,
    Decision,
    ModelVersion,
    PromotionRequest,
    PromotionTarget,
    RegisteredModel,
    RequestStatus,
    Stage,
    Task,
    TrustedType,
    slug_validator,
)

MSG_CANNOT_CHANGE = "Only data scientists of the owning team (or admins) can change this model."
MSG_CANNOT_DOWNLOAD = "Only the owning team's data scientists, approvers and admins can download artifacts."
MSG_READ_ONLY = "This field cannot be changed through the API."
MSG_METRICS = "Metrics must be a JSON object of names to finite numbers."
MSG_JSON_OBJECT = "Must be a JSON object."
MAX_METRICS = 200
MAX_PARAMS_CHARS = 64_000

Readers = role_permission(Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
Writers = role_permission(Role.DATA_SCIENTIST)


def _ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _require_change(request: Request, model: RegisteredModel) -> None:
    if not selectors.can_change_model(request.user, model):
        raise ApiError(403, "permission_denied", MSG_CANNOT_CHANGE)


def _refuse_read_only(data: Any, editable: tuple[str, ...]) -> None:
    fixed = sorted(set(getattr(data, "keys", lambda: [])()) - set(editable))
    if fixed:
        raise ApiError(400, "validation_error", "The request has invalid fields; see details.",
                       {name: [MSG_READ_ONLY] for name in fixed})


# --- serializers shared by several operations -----------------------------------------------


class VersionSummaryOutput(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["number", "status", "stage", "format", "engine", "metrics", "created_at"]


class ModelOutput(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tags = serializers.SerializerMethodField()
    owners = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["name", "title", "task", "description", "business_objective", "team", "tags", "owners",
                  "aliases", "created_at", "updated_at"]

    def get_tags(self, model: RegisteredModel) -> list[str]:
        return [t.tag for t in model.tags.all()]

    def get_aliases(self, model: RegisteredModel) -> dict[str, int]:
        return {a.name: a.version.number for a in model.aliases.all()}


class ModelDetailOutput(ModelOutput):
    versions = serializers.SerializerMethodField()

    class Meta(ModelOutput.Meta):
        fields = [*ModelOutput.Meta.fields, "versions"]

    def get_versions(self, model: RegisteredModel) -> list[dict[str, Any]]:
        return VersionSummaryOutput(selectors.versions_of(model), many=True).data


class VersionOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    parent_version = serializers.IntegerField(source="parent.number", default=None)
    created_by = serializers.CharField(source="created_by.username")
    version_mismatch_accepted = serializers.SerializerMethodField()
    has_onnx_twin = serializers.SerializerMethodField()
    gate_overrides = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["model", "number", "status", "status_reason", "stage", "format", "artifact_sha256",
                  "artifact_size", "original_filename", "framework", "library_versions", "signature", "metrics",
                  "params", "reference_format", "reference_rows", "reference_sha256", "target_column",
                  "training_data_fingerprint", "training_data_description", "description", "intended_use",
                  "limitations", "source_code_ref", "parent_version", "untrusted_types", "trained_sklearn_version",
                  "version_mismatch_accepted", "validation", "feature_importance", "engine", "engine_reason",
                  "has_onnx_twin", "gate_overrides", "validated_at", "validation_attempts", "created_by",
                  "created_at"]

    def get_version_mismatch_accepted(self, version: ModelVersion) -> bool:
        return version.version_mismatch_accepted_by_id is not None

    def get_has_onnx_twin(self, version: ModelVersion) -> bool:
        return bool(version.onnx_key)

    def get_gate_overrides(self, version: ModelVersion) -> list[dict[str, Any]]:
        """Every failing gate an admin let pass for this version, with the written reason (kept forever)."""
        return [{"gate": o.gate, "reason": o.reason, "admin": o.admin.username, "request": o.request_id,
                 "detail": o.measured.get("detail", ""), "created_at": o.created_at}
                for o in version.gate_overrides.select_related("admin")]


def _metrics(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > MAX_METRICS:
        raise serializers.ValidationError(MSG_METRICS)
    for name, number in value.items():
        ok = isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)
        if not ok or len(name) > 100:
            raise serializers.ValidationError(MSG_METRICS)
    return value


def _params(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError(MSG_JSON_OBJECT)
    if len(str(value)) > MAX_PARAMS_CHARS:
        raise serializers.ValidationError(f"At most {MAX_PARAMS_CHARS} characters of parameters.")
    return value


# --- models ----------------------------------------------------------------------------------


class ModelListCreateApi(APIView):
    """List the models you can see (search and filters), or register a new model."""

    class Filters(serializers.Serializer):
        q = serializers.CharField(required=False, max_length=100)
        stage = serializers.ChoiceField(required=False, choices=Stage.choices)
        tag = serializers.CharField(required=False, max_length=50)
        owner = serializers.CharField(required=False, max_length=150)
        team = serializers.CharField(required=False, max_length=50)

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=64, validators=[slug_validator])
        task = serializers.ChoiceField(choices=Task.choices)
        title = serializers.CharField(max_length=200, required=False, allow_blank=True)
        description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        business_objective = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
        team = serializers.CharField(required=False, max_length=50)
        tags = serializers.ListField(child=serializers.CharField(max_length=50, validators=[slug_validator]),
                                     required=False, max_length=20)

    def get_permissions(self) -> list[Any]:
        return [Writers()] if self.request.method == "POST" else [Readers()]

    @extend_schema(parameters=[Filters], responses=ModelOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.model_list(request.user, **filters.validated_data), request, self)
        return paginator.get_paginated_response(ModelOutput(page, many=True).data)

    @extend_schema(request=Input, responses={201: ModelDetailOutput})
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.model_create(user=request.user, ip=_ip(request), **data.validated_data)
        return Response(ModelDetailOutput(model).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    """One model with its aliases and versions; PATCH edits its description fields (audited)."""

    permission_classes = [Readers]

    class Input(serializers.Serializer):
        title = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        business_objective = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
        tags = serializers.ListField(child=serializers.CharField(max_length=50, validators=[slug_validator]),
                                     required=False, max_length=20)

    @extend_schema(responses=ModelDetailOutput)
    def get(self, request: Request, name: str) -> Response:
        return Response(ModelDetailOutput(selectors.model_for(request.user, name)).data)

    @extend_schema(request=Input, responses=ModelDetailOutput)
    def patch(self, request: Request, name: str) -> Response:
        model = selectors.model_for(request.user, name)
        _require_change(request, model)
        _refuse_read_only(request.data, tuple(self.Input().fields))
        data = self.Input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        model = services.model_update(model=model, user=request.user, changes=data.validated_data, ip=_ip(request))
        return Response(ModelDetailOutput(model).data)


# --- versions --------------------------------------------------------------------------------


class VersionListCreateApi(APIView):
    """List a model's versions, or register a new one (multipart upload; validation runs in a worker)."""

    permission_classes = [Readers]
    parser_classes = [MultiPartParser]

    class Input(serializers.Serializer):
        artifact = serializers.FileField(max_length=255, allow_empty_file=False)
        format = serializers.ChoiceField(choices=ArtifactFormat.choices, default=ArtifactFormat.SKOPS)
        reference_data = serializers.FileField(max_length=255, required=False, allow_empty_file=False)
        target_column = serializers.CharField(required=False, allow_blank=True, max_length=200)
        metrics = serializers.JSONField(required=False, binary=True, validators=[_metrics])
        params = serializers.JSONField(required=False, binary=True, validators=[_params])
        description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        intended_use = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
        limitations = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
        source_code_ref = serializers.CharField(required=False, allow_blank=True, max_length=500)
        training_data_description = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
        parent_version = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(responses=VersionSummaryOutput(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_for(request.user, name)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.versions_of(model), request, self)
        return paginator.get_paginated_response(VersionSummaryOutput(page, many=True).data)

    @extend_schema(request=Input, responses={201: VersionOutput})
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_for(request.user, name)
        _require_change(request, model)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        upload = services.VersionUpload(
            reference=fields.pop("reference_data", None), parent_number=fields.pop("parent_version", None), **fields
        )
        version = services.version_register(model=model, user=request.user, upload=upload, ip=_ip(request))
        return Response(VersionOutput(version).data, status=status.HTTP_201_CREATED)


class VersionDetailApi(APIView):
    """One version: status, signature, metrics, validation results; PATCH edits model-card text only."""

    permission_classes = [Readers]

    class Input(serializers.Serializer):
        description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        intended_use = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
        limitations = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
        source_code_ref = serializers.CharField(required=False, allow_blank=True, max_length=500)
        training_data_description = serializers.CharField(required=False, allow_blank=True, max_length=5_000)

    @extend_schema(responses=VersionOutput)
    def get(self, request: Request, name: str, number: int) -> Response:
        return Response(VersionOutput(selectors.version_for(request.user, name, number)).data)

    @extend_schema(request=Input, responses=VersionOutput)
    def patch(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_for(request.user, name, number)
        _require_change(request, version.model)
        _refuse_read_only(request.data, tuple(self.Input().fields))
        data = self.Input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        version = services.version_update_metadata(
            version=version, user=request.user, changes=data.validated_data, ip=_ip(request)
        )
        return Response(VersionOutput(version).data)


class VersionArtifactApi(APIView):
    """Download the artifact exactly as registered."""

    permission_classes = [Readers]

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="The artifact bytes")})
    def get(self, request: Request, name: str, number: int) -> FileResponse:
        version = selectors.version_for(request.user, name, number)
        if not selectors.can_download_artifact(request.user, version.model):
            raise ApiError(403, "permission_denied", MSG_CANNOT_DOWNLOAD)
        extension = {"skops": "skops", "onnx": "onnx"}.get(version.format, "pkl")
        return FileResponse(
            default_storage.open(version.artifact_key, "rb"), as_attachment=True,
            filename=f"{version.model.name}-v{version.number}.{extension}", content_type="application/octet-stream",
        )


class VersionCompareApi(APIView):
    """Two versions side by side: metrics and signature differences."""

    permission_classes = [Readers]

    class Filters(serializers.Serializer):
        a = serializers.IntegerField(min_value=1)
        b = serializers.IntegerField(min_value=1)

    class Output(serializers.Serializer):
        a = VersionSummaryOutput()
        b = VersionSummaryOutput()
        metrics = serializers.ListField(child=serializers.DictField())
        signature = serializers.ListField(child=serializers.DictField())

    @extend_schema(parameters=[Filters], responses=Output)
    def get(self, request: Request, name: str) -> Response:
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        a = selectors.version_for(request.user, name, filters.validated_data["a"])
        b = selectors.version_for(request.user, name, filters.validated_data["b"])
        return Response(self.Output({
            "a": a, "b": b, "metrics": selectors.metrics_comparison(a, b), "signature": selectors.signature_diff(a, b),
        }).data)


# --- trust settings (admins) -------------------------------------------------------------------------


class TrustedTypeOutput(serializers.ModelSerializer):
    added_by = serializers.CharField(source="added_by.username", default=None)

    class Meta:
        model = TrustedType
        fields = ["id", "name", "reason", "added_by", "added_at"]


class TrustedTypeListCreateApi(APIView):
    """Types skops may load beyond its defaults. Adding one re-validates versions waiting for it."""

    permission_classes = [IsAdmin]

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=255)
        reason = serializers.CharField(max_length=2_000)

    @extend_schema(responses=TrustedTypeOutput(many=True))
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(TrustedType.objects.select_related("added_by"), request, self)
        return paginator.get_paginated_response(TrustedTypeOutput(page, many=True).data)

    @extend_schema(request=Input, responses={201: TrustedTypeOutput})
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        trusted = services.trusted_type_add(admin=request.user, ip=_ip(request), **data.validated_data)
        return Response(TrustedTypeOutput(trusted).data, status=status.HTTP_201_CREATED)


class TrustedTypeDeleteApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.trusted_type_remove(admin=request.user, trusted=get_object_or_404(TrustedType, pk=pk), ip=_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionAcceptMismatchApi(APIView):
    """Accept a model saved with another scikit-learn version; validation runs again."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses=VersionOutput)
    def post(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_for(request.user, name, number)
        if not services.version_accept_sklearn_mismatch(admin=request.user, version=version, ip=_ip(request)):
            raise ApiError(409, "conflict", "This version is not waiting for a scikit-learn version decision.")
        version.refresh_from_db()
        return Response(VersionOutput(version).data)


class RegistryPolicyApi(APIView):
    """Registry-wide switches: whether pickle/joblib artifacts are accepted at all."""

    permission_classes = [IsAdmin]

    class Body(serializers.Serializer):
        allow_pickle = serializers.BooleanField()

    @extend_schema(responses=Body)
    def get(self, request: Request) -> Response:
        return Response(self.Body(selectors.registry_policy()).data)

    @extend_schema(request=Body, responses=Body)
    def put(self, request: Request) -> Response:
        data = self.Body(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.policy_set_allow_pickle(admin=request.user, ip=_ip(request),
                                                  allow=data.validated_data["allow_pickle"])
        return Response(self.Body(policy).data)


# --- governance: promotion requests, decisions, rollback, history, policies ---------------------------


class PromotionOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.number")
    requester = serializers.CharField(source="requester.username")
    decided_by = serializers.CharField(source="decided_by.username", default=None)
    champion_version = serializers.IntegerField(source="champion_at_evaluation.number", default=None)
    approvals = serializers.SerializerMethodField()
    comments = serializers.SerializerMethodField()
    overrides = serializers.SerializerMethodField()
    approvals_missing = serializers.SerializerMethodField()

    class Meta:
        model = PromotionRequest
        fields = ["id", "model", "version", "target", "requester", "justification", "status", "decided_at",
                  "decided_by", "decision_reason", "gates_status", "gate_results", "gates_at_open",
                  "gates_evaluated_at", "evaluation", "champion_version", "approvals", "approvals_missing",
                  "comments", "overrides", "created_at"]

    def get_approvals(self, request: PromotionRequest) -> list[dict[str, Any]]:
        return [{"user": a.user.username, "role": a.role, "decision": a.decision, "comment": a.comment,
                 "created_at": a.created_at} for a in request.approvals.select_related("user")]

    def get_comments(self, request: PromotionRequest) -> list[dict[str, Any]]:
        return [{"author": c.author.username, "body": c.body, "created_at": c.created_at}
                for c in request.comments.select_related("author")]

    def get_overrides(self, request: PromotionRequest) -> list[dict[str, Any]]:
        return [{"gate": o.gate, "admin": o.admin.username, "reason": o.reason, "created_at": o.created_at}
                for o in request.overrides.select_related("admin")]

    def get_approvals_missing(self, request: PromotionRequest) -> dict[str, int]:
        if request.status != RequestStatus.OPEN:
            return {}
        return promotions.approvals_missing(request, selectors.policy_for(request.version.model))


class PromotionOpenApi(APIView):
    """Ask for a version to be promoted to staging or production; the gates are evaluated by a worker."""

    permission_classes = [Readers]

    class Input(serializers.Serializer):
        target = serializers.ChoiceField(choices=PromotionTarget.choices)
        justification = serializers.CharField(max_length=5_000)

    @extend_schema(request=Input, responses={201: PromotionOutput})
    def post(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_for(request.user, name, number)
        _require_change(request, version.model)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        opened = promotions.promotion_open(version=version, user=request.user, ip=_ip(request), **data.validated_data)
        return Response(PromotionOutput(opened).data, status=status.HTTP_201_CREATED)


class PromotionListApi(APIView):
    """Promotion requests you can see; `awaiting=me` lists the open ones that still need your decision."""

    permission_classes = [Readers]

    class Filters(serializers.Serializer):
        status = serializers.ChoiceField(choices=RequestStatus.choices, required=False)
        model = serializers.CharField(required=False, max_length=64)
        awaiting = serializers.ChoiceField(choices=["me"], required=False)

    @extend_schema(parameters=[Filters], responses=PromotionOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = dict(filters.validated_data)
        if wanted.pop("awaiting", None) == "me":
            found: Any = selectors.promotions_awaiting(request.user, model=wanted.get("model", ""))
        else:
            found = selectors.promotion_requests_filtered(request.user, **wanted)
        paginator = Pagination()
        page = paginator.paginate_queryset(found, request, self)
        return paginator.get_paginated_response(PromotionOutput(page, many=True).data)


class PromotionDetailApi(APIView):
    permission_classes = [Readers]

    @extend_schema(responses=PromotionOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(PromotionOutput(selectors.promotion_for(request.user, pk)).data)


class DecisionInput(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5_000, default="")


class PromotionApproveApi(APIView):
    """Approve. When the policy's approvals are complete and every gate passes, the version is promoted."""

    permission_classes = [Readers]
    decision = Decision.APPROVE

    @extend_schema(request=DecisionInput, responses=PromotionOutput)
    def post(self, request: Request, pk: int) -> Response:
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        decided = promotions.promotion_decide(request=selectors.promotion_for(request.user, pk), user=request.user,
                                              decision=self.decision, ip=_ip(request), **data.validated_data)
        return Response(PromotionOutput(decided).data)


class PromotionRejectApi(PromotionApproveApi):
    """Reject, with a reason (required)."""

    decision = Decision.REJECT


class PromotionWithdrawApi(APIView):
    permission_classes = [Readers]

    @extend_schema(request=None, responses=PromotionOutput)
    def post(self, request: Request, pk: int) -> Response:
        promotion = selectors.promotion_for(request.user, pk)
        promotions.promotion_withdraw(request=promotion, user=request.user, ip=_ip(request))
        promotion.refresh_from_db()
        return Response(PromotionOutput(promotion).data)


class PromotionCommentApi(APIView):
    """Comment on a request (business owners too)."""

    permission_classes = [Readers]

    class Input(serializers.Serializer):
        body = serializers.CharField(max_length=5_000)

    @extend_schema(request=Input, responses={201: PromotionOutput})
    def post(self, request: Request, pk: int) -> Response:
        promotion = selectors.promotion_for(request.user, pk)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        promotions.promotion_comment(request=promotion, user=request.user, ip=_ip(request), **data.validated_data)
        return Response(PromotionOutput(promotion).data, status=status.HTTP_201_CREATED)


class GateOverrideApi(APIView):
    """Admins only: let one failing gate pass, with a written reason kept forever on the version."""

    permission_classes = [IsAdmin]

    class Input(serializers.Serializer):
        gate = serializers.CharField(max_length=50)
        reason = serializers.CharField(max_length=5_000)

    @extend_schema(request=Input, responses={201: PromotionOutput})
    def post(self, request: Request, pk: int) -> Response:
        promotion = selectors.promotion_for(request.user, pk)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        promotions.gate_override(request=promotion, admin=request.user, ip=_ip(request), **data.validated_data)
        promotion.refresh_from_db()
        return Response(PromotionOutput(promotion).data, status=status.HTTP_201_CREATED)


class ModelRollbackApi(APIView):
    """Approvers: restore the previous production version, with a reason."""

    permission_classes = [role_permission(Role.APPROVER)]

    class Input(serializers.Serializer):
        reason = serializers.CharField(max_length=5_000)

    @extend_schema(request=Input, responses=VersionOutput)
    def post(self, request: Request, name: str) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        model = selectors.model_for(request.user, name)
        restored = promotions.model_rollback(model=model, user=request.user, ip=_ip(request), **data.validated_data)
        return Response(VersionOutput(restored).data)


class ModelHistoryApi(APIView):
    """Which version was in production when, how it got there and who approved it; `?at=` for one moment."""

    permission_classes = [Readers]

    class Filters(serializers.Serializer):
        at = serializers.DateTimeField(required=False)

    class Interval(serializers.Serializer):
        version = serializers.IntegerField()
        since = serializers.DateTimeField()
        until = serializers.DateTimeField(allow_null=True)
        kind = serializers.CharField()
        by = serializers.CharField()
        approved_by = serializers.ListField(child=serializers.CharField())
        request = serializers.IntegerField(allow_null=True)
        reason = serializers.CharField(allow_blank=True)

    @extend_schema(parameters=[Filters], responses=Interval(many=True))
    def get(self, request: Request, name: str) -> Response:
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        model = selectors.model_for(request.user, name)
        if "at" in filters.validated_data:
            found = selectors.in_production_at(model, filters.validated_data["at"])
            return Response(self.Interval([found] if found else [], many=True).data)
        return Response(self.Interval(selectors.production_history(model), many=True).data)


class PolicyBody(serializers.Serializer):
    required_approvals = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=10)), required=False
    )
    allow_requester_approval = serializers.BooleanField(required=False)
    allow_author_approval = serializers.BooleanField(required=False)
    gates = serializers.DictField(required=False)
    auto_promote = serializers.BooleanField(required=False)

    def validate_required_approvals(self, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        known_roles = {str(r) for r in Role}
        for target, roles in value.items():
            if target not in PromotionTarget.values or set(roles) - known_roles:
                raise serializers.ValidationError(
                    f"Use targets {PromotionTarget.values} and roles {sorted(known_roles)}."
                )
        return value

    def validate_gates(self, value: dict[str, Any]) -> dict[str, Any]:
        from registry.gates import GATE_LABELS

        unknown = set(value) - set(GATE_LABELS)
        if unknown:
            raise serializers.ValidationError(f"Unknown gates: {sorted(unknown)}; known: {list(GATE_LABELS)}.")
        fairness = value.get("fairness")
        if fairness and not (isinstance(fairness, dict) and fairness.get("column") and "max_gap" in fairness):
            raise serializers.ValidationError('fairness needs {"column": ..., "max_gap": ..., "metric": ...}.')
        return value


class ModelPolicyApi(APIView):
    """The approval policy that applies to a model (its own, or the default); admins change it."""

    permission_classes = [Readers]

    @extend_schema(responses=PolicyBody)
    def get(self, request: Request, name: str) -> Response:
        return Response(PolicyBody(selectors.policy_for(selectors.model_for(request.user, name))).data)

    @extend_schema(request=PolicyBody, responses=PolicyBody)
    def put(self, request: Request, name: str) -> Response:
        if not IsAdmin().has_permission(request, self):
            raise ApiError(403, "permission_denied", IsAdmin.message)
        model = selectors.model_for(request.user, name)
        data = PolicyBody(data=request.data)
        data.is_valid(raise_exception=True)
        policy = promotions.policy_update(model=model, admin=request.user, changes=data.validated_data,
                                          ip=_ip(request))
        return Response(PolicyBody(policy).data)


class DefaultPolicyApi(APIView):
    """The global default policy (admins)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=PolicyBody)
    def get(self, request: Request) -> Response:
        return Response(PolicyBody(ApprovalPolicy.objects.get(model=None)).data)

    @extend_schema(request=PolicyBody, responses=PolicyBody)
    def put(self, request: Request) -> Response:
        data = PolicyBody(data=request.data)
        data.is_valid(raise_exception=True)
        policy = promotions.policy_update(model=None, admin=request.user, changes=data.validated_data, ip=_ip(request))
        return Response(PolicyBody(policy).data)


class EvaluationDataApi(APIView):
    """Attach a labelled holdout set: promotion gates score candidate and champion on these rows."""

    permission_classes = [Readers]
    parser_classes = [MultiPartParser]

    class Input(serializers.Serializer):
        data = serializers.FileField(max_length=255, allow_empty_file=False)
        target_column = serializers.CharField(max_length=200)

    @extend_schema(request=Input, responses=ModelDetailOutput)
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_for(request.user, name)
        _require_change(request, model)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.model_set_evaluation_data(model=model, user=request.user, ip=_ip(request),
                                                   upload=data.validated_data["data"],
                                                   target_column=data.validated_data["target_column"])
        return Response(ModelDetailOutput(model).data)

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
from registry import selectors, services
from registry.models import ArtifactFormat, ModelVersion, RegisteredModel, Stage, Task, TrustedType, slug_validator

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

    class Meta:
        model = ModelVersion
        fields = ["model", "number", "status", "status_reason", "stage", "format", "artifact_sha256",
                  "artifact_size", "original_filename", "framework", "library_versions", "signature", "metrics",
                  "params", "reference_format", "reference_rows", "reference_sha256", "target_column",
                  "training_data_fingerprint", "training_data_description", "description", "intended_use",
                  "limitations", "source_code_ref", "parent_version", "untrusted_types", "trained_sklearn_version",
                  "version_mismatch_accepted", "validation", "feature_importance", "engine", "engine_reason",
                  "has_onnx_twin", "validated_at", "validation_attempts", "created_by", "created_at"]

    def get_version_mismatch_accepted(self, version: ModelVersion) -> bool:
        return version.version_mismatch_accepted_by_id is not None

    def get_has_onnx_twin(self, version: ModelVersion) -> bool:
        return bool(version.onnx_key)


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
        policy = services.policy_set_allow_pickle(admin=request.user, ip=_ip(request), **data.validated_data)
        return Response(self.Body(policy).data)

"""Scoring REST operations: real-time prediction (MLflow-compatible bodies accepted)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.api import ApiError, Pagination
from opsportal.roles import Role, has_role, role_permission
from registry import selectors
from registry.models import AliasName
from scoring import batch, services
from scoring import selectors as scoring_selectors
from scoring.models import ChallengerMode, ScoringJob
from scoring.throttling import PredictRateThrottle

Scorers = role_permission(Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)


def _explain(request: Request) -> bool:
    return request.query_params.get("explain") in ("1", "true")


class PredictOutput(serializers.Serializer):
    request_id = serializers.UUIDField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    engine = serializers.CharField()
    predictions = serializers.ListField()
    probabilities = serializers.ListField(child=serializers.DictField(), required=False)
    ids = serializers.ListField(required=False)
    versions = serializers.ListField(child=serializers.IntegerField(), required=False)
    explanations = serializers.ListField(child=serializers.DictField(), required=False)
    unseen_categories = serializers.DictField(child=serializers.IntegerField())
    latency_ms = serializers.FloatField()


class PredictInput(serializers.Serializer):
    rows = serializers.ListField(child=serializers.DictField(), required=False)
    ids = serializers.ListField(required=False)
    dataframe_split = serializers.DictField(required=False)
    dataframe_records = serializers.ListField(child=serializers.DictField(), required=False)


class PredictApi(APIView):
    """Score rows with the champion (or `?alias=challenger`)."""

    permission_classes = [Scorers]
    throttle_classes = [PredictRateThrottle]
    allows_predict_scope = True

    @extend_schema(request=PredictInput, responses=PredictOutput, parameters=[
        OpenApiParameter("alias", str, enum=AliasName.values, required=False),
        OpenApiParameter("explain", bool, required=False, description="Per-row contributions of each input.")])
    def post(self, request: Request, name: str) -> Response:
        alias = request.query_params.get("alias") or None
        if alias is not None and alias not in AliasName.values:
            raise services.ScoringError("validation_error", "Unknown alias.", details={"alias": AliasName.values})
        model, pk = selectors.model_for_scoring(request.user, name, alias=alias or AliasName.CHAMPION)
        return Response(services.predict(model=model, body=request.data, alias=alias, explain=_explain(request),
                                         version_pk=pk))


class VersionPredictApi(APIView):
    """Score rows with one version."""

    permission_classes = [Scorers]
    throttle_classes = [PredictRateThrottle]
    allows_predict_scope = True

    @extend_schema(request=PredictInput, responses=PredictOutput, parameters=[
        OpenApiParameter("explain", bool, required=False, description="Per-row contributions of each input.")])
    def post(self, request: Request, name: str, number: int) -> Response:
        model, pk = selectors.model_for_scoring(request.user, name, number=number)
        return Response(services.predict(model=model, body=request.data, number=number, explain=_explain(request),
                                         version_pk=pk))


class ScoringConfigApi(APIView):
    """How the challenger takes part in traffic: off, shadow, or canary with a percentage (approvers, admins)."""

    permission_classes = [Scorers]

    class Body(serializers.Serializer):
        challenger_mode = serializers.ChoiceField(choices=ChallengerMode.choices)
        canary_percent = serializers.IntegerField(min_value=0, max_value=100, default=0)

    @extend_schema(responses=Body)
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_for(request.user, name)
        return Response(self.Body(scoring_selectors.scoring_config_for(model)).data)

    @extend_schema(request=Body, responses=Body)
    def put(self, request: Request, name: str) -> Response:
        model = selectors.model_for(request.user, name)
        if not has_role(request.user, Role.APPROVER):
            raise ApiError(403, "permission_denied", "Only approvers and admins route production traffic.")
        data = self.Body(data=request.data)
        data.is_valid(raise_exception=True)
        config = services.scoring_config_set(model=model, user=request.user, ip=request.META.get("REMOTE_ADDR"),
                                             mode=data.validated_data["challenger_mode"],
                                             canary_percent=data.validated_data["canary_percent"])
        return Response(self.Body(config).data)


# --- batch scoring ------------------------------------------------------------------------------------


class JobOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number")
    requested_by = serializers.CharField(source="requested_by.username")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ScoringJob
        fields = ["id", "model", "version", "status", "status_reason", "input_filename", "id_column", "chunk_size",
                  "max_error_rate", "log_predictions", "total_rows", "rows_done", "rows_failed", "progress",
                  "requested_by", "created_at", "started_at", "finished_at"]

    def get_progress(self, job: ScoringJob) -> dict[str, Any]:
        return scoring_selectors.job_progress(job)


class JobListCreateApi(APIView):
    """Batch scoring jobs you can see; POST a CSV or Parquet file to score it in chunks."""

    permission_classes = [Scorers]
    parser_classes = [MultiPartParser]

    class Input(serializers.Serializer):
        model = serializers.CharField(max_length=64)
        file = serializers.FileField(max_length=255, allow_empty_file=False)
        alias = serializers.ChoiceField(choices=AliasName.choices, required=False)
        version = serializers.IntegerField(min_value=1, required=False)
        id_column = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        chunk_size = serializers.IntegerField(min_value=100, max_value=100_000, default=5000)
        max_error_rate = serializers.FloatField(min_value=0, max_value=1, default=0.05)
        log_predictions = serializers.BooleanField(default=False)

    @extend_schema(responses=JobOutput(many=True))
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(scoring_selectors.jobs_visible_to(request.user), request, self)
        return paginator.get_paginated_response(JobOutput(page, many=True).data)

    @extend_schema(request=Input, responses={202: JobOutput})
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        model = selectors.model_for(request.user, fields.pop("model"))
        version = services.resolve_version(model, alias=fields.pop("alias", None), number=fields.pop("version", None))
        job = batch.job_create(model=model, version=version, user=request.user, upload=fields.pop("file"),
                               ip=request.META.get("REMOTE_ADDR"), **fields)
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailApi(APIView):
    permission_classes = [Scorers]

    @extend_schema(responses=JobOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobOutput(scoring_selectors.job_for(request.user, pk)).data)


class JobCancelApi(APIView):
    permission_classes = [Scorers]

    @extend_schema(request=None, responses=JobOutput)
    def post(self, request: Request, pk: int) -> Response:
        job = scoring_selectors.job_for(request.user, pk)
        batch.job_cancel(job=job, user=request.user, ip=request.META.get("REMOTE_ADDR"))
        job.refresh_from_db()
        return Response(JobOutput(job).data)


class JobResultApi(APIView):
    """The scored rows: `?format=csv` (default, safe against spreadsheet formulas) or `parquet`;
    `?errors=1` for the rows that could not be scored and why."""

    permission_classes = [Scorers]

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["csv", "parquet"], required=False),
                               OpenApiParameter("errors", bool, required=False)],
                   responses={(200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> HttpResponse:
        job = scoring_selectors.job_for(request.user, pk)
        if not job.is_finished:
            raise ApiError(409, "not_finished", "The job is still running; its results are not complete yet.")
        name = f"{job.model.name}-job{job.pk}"
        if request.query_params.get("errors") in ("1", "true"):
            response = StreamingHttpResponse(batch.results_csv(job, errors_only=True), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="{name}-errors.csv"'
            return response
        if request.query_params.get("format") == "parquet":
            response = HttpResponse(batch.results_parquet(job), content_type="application/vnd.apache.parquet")
            response["Content-Disposition"] = f'attachment; filename="{name}.parquet"'
            return response
        response = StreamingHttpResponse(batch.results_csv(job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response

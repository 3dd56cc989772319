"""Monitoring REST operations: start a run, read a run, a model's series, alerts and acknowledging them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import selectors, services
from monitoring.models import Alert, AlertStatus, FeatureDrift, MonitoringRun
from opsportal.api import ApiError, Pagination
from opsportal.roles import Role, has_role, role_permission
from registry import selectors as registry_selectors

Readers = role_permission(Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
MSG_CANNOT_RUN = "Only the model's data scientists, approvers and admins can start monitoring runs."
MSG_CANNOT_ACK = "Only people who can see the model's alerts can acknowledge them."


def can_run(user: Any, model: Any) -> bool:
    return registry_selectors.can_change_model(user, model) or has_role(user, Role.APPROVER)


def can_acknowledge(user: Any, model: Any) -> bool:
    """Anyone who sees the alert may say someone is on it (another team's model is already a 404)."""
    return has_role(user, Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)


class FeatureOutput(serializers.ModelSerializer):
    class Meta:
        model = FeatureDrift
        fields = ["column", "kind", "method", "method_label", "threshold", "score", "drifted", "reference_rows",
                  "current_rows", "missing_reference", "missing_current", "out_of_range", "unseen_categories",
                  "unseen_count", "type_errors"]


class RunOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number")
    features = serializers.SerializerMethodField()
    report_url = serializers.SerializerMethodField()

    class Meta:
        model = MonitoringRun
        fields = ["id", "model", "version", "status", "status_reason", "trigger", "source", "window_start",
                  "window_end", "current_filename", "rows_reference", "rows_current", "columns_total",
                  "columns_drifted", "drift_share", "dataset_drift", "prediction_drift", "data_quality",
                  "performance", "estimated_performance", "service", "report_url", "created_at", "started_at",
                  "finished_at", "features"]

    @extend_schema_field(FeatureOutput(many=True))
    def get_features(self, run: MonitoringRun) -> list[dict[str, Any]]:
        return FeatureOutput(selectors.run_features(run), many=True).data

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_report_url(self, run: MonitoringRun) -> str | None:
        return f"/monitoring/runs/{run.pk}/report/" if run.report_key else None


class RunCreateApi(APIView):
    """Start a monitoring run: a window of logged predictions (default: the schedule's window up to now),
    or multipart `current_data` (CSV or Parquet; a target column gives realized performance)."""

    permission_classes = [Readers]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class Input(serializers.Serializer):
        version = serializers.IntegerField(min_value=1, required=False)
        window_start = serializers.DateTimeField(required=False)
        window_end = serializers.DateTimeField(required=False)
        current_data = serializers.FileField(required=False, max_length=255, allow_empty_file=False)

    @extend_schema(request={"application/json": Input, "multipart/form-data": Input}, responses={202: RunOutput})
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_for(request.user, name)
        if not can_run(request.user, model):
            raise ApiError(403, "permission_denied", MSG_CANNOT_RUN)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        number = fields.pop("version", None)
        version = registry_selectors.version_for(request.user, name, number) if number else None
        run = services.run_request(model=model, user=request.user, version=version,
                                   ip=request.META.get("REMOTE_ADDR"), **fields)
        return Response(RunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    """One run with its per-feature results."""

    permission_classes = [Readers]

    @extend_schema(responses=RunOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunOutput(selectors.run_for(request.user, pk)).data)


class SeriesOutput(serializers.Serializer):
    model = serializers.CharField()
    runs = serializers.ListField(child=serializers.DictField())
    open_alerts = serializers.ListField(child=serializers.DictField())


class SeriesApi(APIView):
    """Drift, data quality, performance (realized and estimated) and service health per run, oldest first."""

    permission_classes = [Readers]

    @extend_schema(responses=SeriesOutput, parameters=[
        OpenApiParameter("days", int, required=False, description="How far back (1 to 366, default 366).")])
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_for(request.user, name)
        days = request.query_params.get("days", str(selectors.SERIES_DAYS))
        if not days.isdigit() or not 1 <= int(days) <= selectors.SERIES_DAYS:
            raise ApiError(400, "validation_error", "days must be a whole number from 1 to 366.")
        data = selectors.series(model, days=int(days))
        runs = [{**{k: v for k, v in r.items() if k != "pk"}, "id": r["pk"], "version": r.pop("version__number")}
                for r in data["runs"]]
        alerts = [{"id": a.pk, "kind": a.kind, "severity": a.severity, "status": a.status, "title": a.title,
                   "opened_at": a.opened_at} for a in selectors.open_alerts(model)]
        return Response(SeriesOutput({"model": model.name, "runs": runs, "open_alerts": alerts}).data)


class AlertOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number", allow_null=True, default=None)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True, default=None)

    class Meta:
        model = Alert
        fields = ["id", "model", "version", "kind", "key", "severity", "status", "title", "detail", "opened_at",
                  "acknowledged_at", "acknowledged_by", "resolved_at"]


class AlertListApi(APIView):
    """Alerts on the models you can see (`status=active` for open and acknowledged ones)."""

    permission_classes = [Readers]

    @extend_schema(responses=AlertOutput(many=True), parameters=[
        OpenApiParameter("status", str, enum=["active", *AlertStatus.values], required=False),
        OpenApiParameter("model", str, required=False)])
    def get(self, request: Request) -> Response:
        wanted = request.query_params.get("status", "")
        if wanted and wanted not in ["active", *AlertStatus.values]:
            raise ApiError(400, "validation_error", "Unknown status.", {"status": ["active", *AlertStatus.values]})
        alerts = selectors.alerts_visible_to(request.user, status=wanted, model=request.query_params.get("model", ""))
        paginator = Pagination()
        page = paginator.paginate_queryset(alerts, request, self)
        return paginator.get_paginated_response(AlertOutput(page, many=True).data)


class AlertAcknowledgeApi(APIView):
    """Someone is on it: the alert stays open until its condition clears, but stops asking for attention."""

    permission_classes = [Readers]

    @extend_schema(request=None, responses=AlertOutput)
    def post(self, request: Request, pk: int) -> Response:
        alert = selectors.alert_for(request.user, pk)
        if not can_acknowledge(request.user, alert.model):
            raise ApiError(403, "permission_denied", MSG_CANNOT_ACK)
        alert = services.alert_acknowledge(alert=alert, user=request.user, ip=request.META.get("REMOTE_ADDR"))
        return Response(AlertOutput(alert).data)

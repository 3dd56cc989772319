"""Retraining REST operations: start a run now, read runs (status, log, metrics, comparison, version)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.api import ApiError, Pagination
from opsportal.roles import Role, role_permission
from registry import selectors as registry_selectors
from retraining import selectors, services
from retraining.models import RetrainingRun, Trigger

MSG_CANNOT_START = "Only data scientists of the owning team (or admins) can start a retraining run."

Readers = role_permission(Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)


class RetrainingRunOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    requested_by = serializers.CharField(source="requested_by.username", default=None)
    champion_version = serializers.IntegerField(source="champion.number", default=None)
    produced_version = serializers.IntegerField(source="produced_version.number", default=None)
    promotion_request = serializers.IntegerField(source="promotion_request_id", default=None)
    duration_seconds = serializers.FloatField(allow_null=True)

    class Meta:
        model = RetrainingRun
        fields = ["id", "model", "status", "status_reason", "trigger", "trigger_detail", "requested_by",
                  "data_fingerprint", "training_rows", "holdout_rows", "metrics", "comparison", "gate_results",
                  "champion_version", "produced_version", "promotion_request", "auto_promoted", "recipe_snapshot",
                  "log", "created_at", "started_at", "finished_at", "duration_seconds"]


class RunListCreateApi(APIView):
    """A model's retraining runs, newest first; POST starts one now (409 while one is in progress)."""

    permission_classes = [Readers]

    class Input(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="",
                                       help_text="Why, shown on the run (e.g. “new quarter's data”).")

    @extend_schema(responses=RetrainingRunOutput(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_for(request.user, name)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.runs_visible_to(request.user, model=model.name), request, self)
        return paginator.get_paginated_response(RetrainingRunOutput(page, many=True).data)

    @extend_schema(request=Input, responses={202: RetrainingRunOutput})
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_for(request.user, name)
        if not registry_selectors.can_change_model(request.user, model):
            raise ApiError(403, "permission_denied", MSG_CANNOT_START)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.run_start(model=model, trigger=Trigger.API, user=request.user,
                                 detail=data.validated_data["reason"], ip=_ip(request))
        return Response(RetrainingRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    """One run: status, live log, duration, data fingerprint, metrics, comparison and the version it produced."""

    permission_classes = [Readers]

    @extend_schema(responses=RetrainingRunOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RetrainingRunOutput(selectors.run_for(request.user, pk)).data)


def _ip(request: Request) -> Any:
    return request.META.get("REMOTE_ADDR")

"""Scoring REST operations: real-time prediction (MLflow-compatible bodies accepted)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.api import ApiError
from opsportal.roles import Role, has_role, role_permission
from registry import selectors
from registry.models import AliasName
from scoring import services
from scoring.models import ChallengerMode, ScoringConfig

Scorers = role_permission(Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)


class PredictOutput(serializers.Serializer):
    request_id = serializers.UUIDField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    engine = serializers.CharField()
    predictions = serializers.ListField()
    probabilities = serializers.ListField(child=serializers.DictField(), required=False)
    ids = serializers.ListField(required=False)
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

    @extend_schema(request=PredictInput, responses=PredictOutput, parameters=[
        OpenApiParameter("alias", str, enum=AliasName.values, required=False)])
    def post(self, request: Request, name: str) -> Response:
        alias = request.query_params.get("alias") or None
        if alias is not None and alias not in AliasName.values:
            raise services.ScoringError("validation_error", "Unknown alias.", details={"alias": AliasName.values})
        model = selectors.model_for(request.user, name)
        return Response(services.predict(model=model, body=request.data, alias=alias))


class VersionPredictApi(APIView):
    """Score rows with one version."""

    permission_classes = [Scorers]

    @extend_schema(request=PredictInput, responses=PredictOutput)
    def post(self, request: Request, name: str, number: int) -> Response:
        model = selectors.model_for(request.user, name)
        return Response(services.predict(model=model, body=request.data, number=number))


class ScoringConfigApi(APIView):
    """How the challenger takes part in traffic: off, shadow, or canary with a percentage (approvers, admins)."""

    permission_classes = [Scorers]

    class Body(serializers.Serializer):
        challenger_mode = serializers.ChoiceField(choices=ChallengerMode.choices)
        canary_percent = serializers.IntegerField(min_value=0, max_value=100, default=0)

    @extend_schema(responses=Body)
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_for(request.user, name)
        config = ScoringConfig.objects.filter(model=model).first() or ScoringConfig(model=model)
        return Response(self.Body(config).data)

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

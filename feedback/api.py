"""Business feedback REST operations: campaigns, audiences, outcomes, analysis, sign-offs, labels."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback import analysis, ingest, outcomes, selectors, services
from feedback.models import (
    Campaign,
    CampaignSignOff,
    Direction,
    KpiKind,
    OutcomeUpload,
    SignOffDecision,
    Targeting,
)
from opsportal.api import ApiError, Pagination
from opsportal.roles import Role, role_permission
from registry import artifacts
from registry import selectors as registry_selectors
from registry.models import AliasName
from scoring import selectors as scoring_selectors
from scoring.batch import safe_cell

Readers = role_permission(Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
MSG_CANNOT_RUN = "Only business owners and the model's data scientists (or admins) run its campaigns."
MSG_CANNOT_LABEL = "Only the owning team's data scientists (or admins) upload this model's labels."
MSG_ONE_SOURCE = "Send exactly one of: scoring_job, rows, or a file."
MSG_UNKNOWN_OWNER = "No active user {username!r}."


def _ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _campaign_for_change(request: Request, pk: int) -> Campaign:
    campaign = selectors.campaign_for(request.user, pk)
    if not selectors.can_run_campaign(request.user, campaign.model):
        raise ApiError(403, "permission_denied", MSG_CANNOT_RUN)
    return campaign


def _rows_from(request: Request, limit: int) -> list[ingest.Row] | None:
    """JSON rows (a list, or {"rows": [...]}) or None when a file was sent instead."""
    if "file" in getattr(request.data, "keys", lambda: [])() and hasattr(request.data.get("file"), "read"):
        return None
    return ingest.json_rows(request.data, limit)


# --- campaigns --------------------------------------------------------------------------------------


class KpiBody(serializers.Serializer):
    name = serializers.RegexField(services.KPI_NAME.pattern, max_length=64)
    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=KpiKind.choices, default=KpiKind.BINARY)
    direction = serializers.ChoiceField(choices=Direction.choices, default=Direction.HIGHER)
    value_per_unit = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, allow_null=True)
    is_primary = serializers.BooleanField(default=False)
    missing_as_zero = serializers.BooleanField(default=False)


class ArmOutput(serializers.Serializer):
    name = serializers.CharField()
    is_holdout = serializers.BooleanField()
    share = serializers.FloatField()
    size = serializers.IntegerField()


class CampaignOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number", default=None)
    business_owner = serializers.CharField(source="business_owner.username", default=None)
    created_by = serializers.CharField(source="created_by.username")
    arms = serializers.SerializerMethodField()
    kpis = KpiBody(many=True, read_only=True)

    class Meta:
        model = Campaign
        fields = ["id", "name", "description", "model", "version", "alias", "targeting", "target_count",
                  "score_threshold", "holdout_share", "seed", "status", "business_owner", "arms", "kpis",
                  "data_version", "created_by", "created_at", "updated_at"]

    @extend_schema(responses=ArmOutput(many=True))
    def get_arms(self, campaign: Campaign) -> list[dict[str, Any]]:
        sizes = selectors.arm_sizes(campaign)
        return [{"name": a.name, "is_holdout": a.is_holdout, "share": a.share, "size": sizes.get(a.pk, 0)}
                for a in campaign.arms.all()]


class CampaignListCreateApi(APIView):
    """Campaigns on models you can see; POST creates one (business owners, the model's data scientists)."""

    permission_classes = [Readers]

    class Filters(serializers.Serializer):
        model = serializers.CharField(required=False, max_length=64)

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(max_length=5_000)
        model = serializers.CharField(max_length=64)
        version = serializers.IntegerField(min_value=1, required=False, allow_null=True)
        alias = serializers.ChoiceField(choices=AliasName.choices, required=False, allow_blank=True, default="")
        targeting = serializers.ChoiceField(choices=Targeting.choices, default=Targeting.ALL)
        target_count = serializers.IntegerField(min_value=1, required=False, allow_null=True)
        score_threshold = serializers.FloatField(required=False, allow_null=True)
        holdout_share = serializers.FloatField(min_value=0, max_value=0.99, default=0.1)
        holdout_name = serializers.CharField(max_length=100, default="holdout")
        arms = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1, max_length=20,
                                     default=["treatment"])
        arm_shares = serializers.ListField(child=serializers.FloatField(min_value=0, max_value=1), required=False,
                                           allow_null=True, max_length=20)
        kpis = KpiBody(many=True, allow_empty=False, max_length=20)
        business_owner = serializers.CharField(max_length=150, required=False, allow_blank=True)
        seed = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")

    @extend_schema(parameters=[Filters], responses=CampaignOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.campaign_list(request.user, **filters.validated_data),
                                           request, self)
        return paginator.get_paginated_response(CampaignOutput(page, many=True).data)

    @extend_schema(request=Input, responses={201: CampaignOutput})
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        model = registry_selectors.model_for(request.user, fields.pop("model"))
        if not selectors.can_run_campaign(request.user, model):
            raise ApiError(403, "permission_denied", MSG_CANNOT_RUN)
        spec = services.CampaignSpec(
            kpis=[services.KpiSpec(**k) for k in fields.pop("kpis")], version_number=fields.pop("version", None),
            business_owner=self._owner(request, fields.pop("business_owner", "")), **fields)
        campaign = services.campaign_create(user=request.user, model=model, spec=spec, ip=_ip(request))
        return Response(CampaignOutput(campaign).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _owner(request: Request, username: str) -> Any:
        if not username:
            return request.user
        owner = get_user_model().objects.filter(username=username, is_active=True).first()
        if owner is None:
            message = MSG_UNKNOWN_OWNER.format(username=username)
            raise ApiError(400, "validation_error", message, {"business_owner": [message]})
        return owner


class CampaignDetailApi(APIView):
    permission_classes = [Readers]

    @extend_schema(responses=CampaignOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(CampaignOutput(selectors.campaign_for(request.user, pk)).data)


# --- the audience ------------------------------------------------------------------------------------


class AssignmentReportOutput(serializers.Serializer):
    assigned = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Scored entities the targeting rule left out.")
    by_arm = serializers.DictField(child=serializers.IntegerField())
    errors = serializers.ListField(child=serializers.DictField())


class CampaignAssignmentsApi(APIView):
    """Build the audience: from a finished scoring job (`scoring_job`), a scored list (`mode=scores`: entity_id,
    score; the targeting rule picks), or bring-your-own groups (`mode=groups`: entity_id, group[, score]).
    Rows as JSON (`rows`) or a CSV `file`. Replaces the audience until outcomes arrive (then 409)."""

    permission_classes = [Readers]
    parser_classes = [JSONParser, MultiPartParser]

    class Input(serializers.Serializer):
        scoring_job = serializers.IntegerField(min_value=1, required=False)
        mode = serializers.ChoiceField(choices=["scores", "groups"], required=False)
        rows = serializers.ListField(child=serializers.DictField(), required=False)

    class FileInput(serializers.Serializer):
        mode = serializers.ChoiceField(choices=["scores", "groups"])
        file = serializers.FileField(max_length=255, allow_empty_file=False)

    @extend_schema(request={"application/json": Input, "multipart/form-data": FileInput},
                   responses=AssignmentReportOutput)
    def post(self, request: Request, pk: int) -> Response:
        campaign = _campaign_for_change(request, pk)
        job_id, upload = request.data.get("scoring_job"), request.data.get("file")
        if sum(x is not None for x in (job_id, upload, request.data.get("rows"))) != 1:
            raise ApiError(400, "validation_error", MSG_ONE_SOURCE)
        if job_id is not None:
            data = self.Input(data=request.data)
            data.is_valid(raise_exception=True)
            job = scoring_selectors.job_for(request.user, data.validated_data["scoring_job"])
            report = services.audience_from_job(campaign=campaign, job=job, user=request.user, ip=_ip(request))
        else:
            report = self._from_rows(request, campaign)
        return Response(AssignmentReportOutput(report).data)

    def _from_rows(self, request: Request, campaign: Campaign) -> services.AssignmentReport:
        mode = request.data.get("mode")
        if mode not in ("scores", "groups"):
            raise ApiError(400, "validation_error", "mode: choose scores or groups.", {"mode": ["Required."]})
        build = services.audience_from_scores if mode == "scores" else services.audience_bring_your_own
        upload = request.data.get("file")
        if upload is None:
            rows = ingest.json_rows(request.data, settings.FEEDBACK_MAX_JSON_ROWS)
            return build(campaign=campaign, rows=rows, user=request.user, ip=_ip(request))
        required = ("entity_id", "score") if mode == "scores" else ("entity_id", "group")
        with artifacts.uploaded_to_path(upload) as path:
            ingest.csv_header(path, required)
            return build(campaign=campaign, rows=ingest.csv_rows(path), user=request.user, ip=_ip(request))


def treatment_csv(campaign: Campaign) -> str:
    """The sending system's list: entity_id, arm, score, decile, model_version (formula-safe)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["entity_id", "arm", "score", "decile", "model_version"])
    for a in selectors.treatment_assignments(campaign).iterator(chunk_size=5000):
        writer.writerow([safe_cell(a.entity_id), safe_cell(a.arm.name), a.score, a.decile,
                         a.version.number if a.version else ""])
    return buffer.getvalue()


class TreatmentOutput(serializers.Serializer):
    entity_id = serializers.CharField()
    arm = serializers.CharField(source="arm.name")
    score = serializers.FloatField(allow_null=True)
    decile = serializers.IntegerField(allow_null=True)
    model_version = serializers.IntegerField(source="version.number", default=None)


class CampaignTreatmentApi(APIView):
    """Who gets the action (every non-holdout entity): JSON pages, or `?export=csv` for the sending system."""

    permission_classes = [Readers]

    @extend_schema(parameters=[OpenApiParameter("export", str, enum=["csv"], required=False)],
                   responses={200: TreatmentOutput(many=True), (200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> Response | HttpResponse:
        campaign = selectors.campaign_for(request.user, pk)
        if request.query_params.get("export") == "csv":
            response = HttpResponse(treatment_csv(campaign), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-treatment.csv"'
            return response
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.treatment_assignments(campaign), request, self)
        return paginator.get_paginated_response(TreatmentOutput(page, many=True).data)


# --- outcomes ------------------------------------------------------------------------------------------


class UploadOutput(serializers.ModelSerializer):
    percent = serializers.FloatField()

    class Meta:
        model = OutcomeUpload
        fields = ["id", "status", "status_reason", "filename", "total_rows", "rows_done", "rows_failed", "created",
                  "updated", "unchanged", "percent", "errors", "created_at", "started_at", "finished_at"]


class CampaignOutcomesApi(APIView):
    """Outcomes `entity_id, kpi, value[, observed_at]` as a JSON list (or {"rows": [...]}) or a CSV `file`.
    Idempotent upserts; bad rows listed with the reason, good rows kept. 202 while a worker reads a big file."""

    permission_classes = [Readers]
    parser_classes = [JSONParser, MultiPartParser]

    class Row(serializers.Serializer):
        entity_id = serializers.CharField(max_length=200)
        kpi = serializers.CharField(max_length=64)
        value = serializers.FloatField()
        observed_at = serializers.DateTimeField(required=False)

    class FileInput(serializers.Serializer):
        file = serializers.FileField(max_length=255, allow_empty_file=False)

    @extend_schema(request={"application/json": Row(many=True), "multipart/form-data": FileInput},
                   responses={200: UploadOutput, 202: UploadOutput})
    def post(self, request: Request, pk: int) -> Response:
        campaign = _campaign_for_change(request, pk)
        rows = _rows_from(request, settings.FEEDBACK_MAX_JSON_ROWS)
        if rows is None:
            upload = outcomes.outcomes_from_file(campaign=campaign, user=request.user,
                                                 upload_file=request.data["file"], ip=_ip(request))
        else:
            upload = outcomes.outcomes_from_json(campaign=campaign, user=request.user, body=request.data,
                                                 ip=_ip(request))
        code = status.HTTP_200_OK if upload.is_finished else status.HTTP_202_ACCEPTED
        return Response(UploadOutput(upload).data, status=code)


class OutcomeUploadDetailApi(APIView):
    permission_classes = [Readers]

    @extend_schema(responses=UploadOutput)
    def get(self, request: Request, pk: int, upload: int) -> Response:
        campaign = selectors.campaign_for(request.user, pk)
        return Response(UploadOutput(selectors.upload_for(campaign, upload)).data)


# --- analysis ----------------------------------------------------------------------------------------------


def analysis_csv(result: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in analysis.analysis_csv_rows(result):
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()


class AnalysisOutput(serializers.Serializer):
    up_to_date = serializers.BooleanField()
    computed_at = serializers.DateTimeField()
    duration_ms = serializers.FloatField()
    result = serializers.DictField(help_text="Per KPI and arm: sizes, rates/means, uplift, intervals, p-value, "
                                             "SRM, per-decile uplift, incremental outcomes, money, hit rate.")


class CampaignAnalysisApi(APIView):
    """The latest analysis (refreshed by a worker when outcomes land); `?refresh=1` recomputes it now,
    `?export=csv` exports one line per KPI and arm."""

    permission_classes = [Readers]

    @extend_schema(parameters=[OpenApiParameter("refresh", bool, required=False),
                               OpenApiParameter("export", str, enum=["csv"], required=False)],
                   responses={200: AnalysisOutput, (200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> Response | HttpResponse:
        campaign = selectors.campaign_for(request.user, pk)
        cached = selectors.analysis_of(campaign)
        if cached is None or request.query_params.get("refresh") in ("1", "true"):
            cached = analysis.campaign_analyse(campaign_id=campaign.pk)
            campaign.refresh_from_db()
        if request.query_params.get("export") == "csv":
            response = HttpResponse(analysis_csv(cached.result), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-analysis.csv"'
            return response
        return Response(AnalysisOutput({
            "up_to_date": selectors.is_analysis_current(campaign, cached), "computed_at": cached.computed_at,
            "duration_ms": cached.duration_ms, "result": cached.result}).data)


# --- what people say -----------------------------------------------------------------------------------------


class CommentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.CharField(source="author.username")
    body = serializers.CharField()
    version = serializers.IntegerField(source="version.number", default=None)
    created_at = serializers.DateTimeField()


class CampaignCommentApi(APIView):
    permission_classes = [Readers]

    class Input(serializers.Serializer):
        body = serializers.CharField(max_length=5_000)

    @extend_schema(request=Input, responses={201: CommentOutput})
    def post(self, request: Request, pk: int) -> Response:
        campaign = selectors.campaign_for(request.user, pk)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.campaign_comment(campaign=campaign, user=request.user, ip=_ip(request),
                                            **data.validated_data)
        return Response(CommentOutput(comment).data, status=status.HTTP_201_CREATED)


class SignOffOutput(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    version = serializers.IntegerField(source="version.number", default=None)

    class Meta:
        model = CampaignSignOff
        fields = ["id", "user", "decision", "reason", "summary", "version", "created_at"]


def _headline(campaign: Campaign) -> str:
    cached = selectors.analysis_of(campaign)
    return cached.result.get("headline", "") if cached else ""


class CampaignSignOffApi(APIView):
    """Business owners accept or reject the campaign's result, with a reason (audited, on the version page)."""

    permission_classes = [Readers]

    class Input(serializers.Serializer):
        decision = serializers.ChoiceField(choices=SignOffDecision.choices)
        reason = serializers.CharField(max_length=5_000)

    @extend_schema(request=Input, responses={201: SignOffOutput})
    def post(self, request: Request, pk: int) -> Response:
        campaign = selectors.campaign_for(request.user, pk)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        sign_off = services.campaign_sign_off(campaign=campaign, user=request.user, summary=_headline(campaign),
                                              ip=_ip(request), **data.validated_data)
        return Response(SignOffOutput(sign_off).data, status=status.HTTP_201_CREATED)


class CampaignRetrainingRequestApi(APIView):
    """Ask the model's data scientists to retrain it (their inbox); business owners and approvers."""

    permission_classes = [Readers]

    class Input(serializers.Serializer):
        reason = serializers.CharField(max_length=5_000)

    @extend_schema(request=Input, responses={202: None})
    def post(self, request: Request, pk: int) -> Response:
        campaign = selectors.campaign_for(request.user, pk)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        services.campaign_request_retraining(campaign=campaign, user=request.user, ip=_ip(request),
                                             **data.validated_data)
        return Response(status=status.HTTP_202_ACCEPTED)


# --- labels -------------------------------------------------------------------------------------------------


class LabelReportOutput(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    failed = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())


class LabelsApi(APIView):
    """Ground truth for monitoring: JSON `[{"id", "label"[, "observed_at"]}]` (or {"rows": [...]}) or a CSV
    `file` with id,label[,observed_at]. Upserted by id; bad rows listed, good rows kept."""

    permission_classes = [Readers]
    parser_classes = [JSONParser, MultiPartParser]

    class Row(serializers.Serializer):
        id = serializers.CharField(max_length=200)
        label = serializers.JSONField()
        observed_at = serializers.DateTimeField(required=False)

    class FileInput(serializers.Serializer):
        file = serializers.FileField(max_length=255, allow_empty_file=False)

    @extend_schema(request={"application/json": Row(many=True), "multipart/form-data": FileInput},
                   responses=LabelReportOutput)
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_for(request.user, name)
        if not registry_selectors.can_change_model(request.user, model):
            raise ApiError(403, "permission_denied", MSG_CANNOT_LABEL)
        rows = _rows_from(request, settings.FEEDBACK_MAX_JSON_ROWS)
        if rows is not None:
            report = services.labels_upsert(model=model, user=request.user, rows=rows, ip=_ip(request))
        else:
            report = services.labels_from_file(model=model, user=request.user, upload=request.data["file"],
                                               ip=_ip(request))
        return Response(LabelReportOutput(_label_report(report)).data)


def _label_report(report: services.UpsertReport) -> dict[str, Any]:
    return {"created": report.created, "updated": report.updated, "unchanged": report.unchanged,
            "failed": report.failed, "errors": report.errors[:1000]}

"""REST operations: your notifications; the admins' webhooks and delivery logs."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import notifications
from accounts.models import Notification, Webhook, WebhookDelivery
from opsportal.api import Pagination
from opsportal.roles import IsAdmin

MAX_IDS = 1000


class NotificationListApi(APIView):
    """Your own notifications, newest first; `?unread=1` for the unread ones only."""

    class Filters(serializers.Serializer):
        unread = serializers.BooleanField(required=False, default=False)

    class Output(serializers.ModelSerializer):
        class Meta:
            model = Notification
            fields = ["id", "event", "title", "body", "url", "created_at", "read_at"]

    @extend_schema(parameters=[Filters], responses=Output(many=True))
    def get(self, request: Request) -> Response:
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        found = notifications.notifications_of(request.user, unread=filters.validated_data["unread"])
        paginator = Pagination()
        page = paginator.paginate_queryset(found, request, view=self)
        return paginator.get_paginated_response(self.Output(page, many=True).data)


class NotificationReadApi(APIView):
    """Mark some (`ids`) or all (`all: true`) of your notifications read."""

    class Input(serializers.Serializer):
        ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=notifications.MAX_ID),
                                    required=False, max_length=MAX_IDS)
        all = serializers.BooleanField(required=False, default=False)

        def validate(self, attrs: dict) -> dict:
            if ("ids" in attrs) == attrs["all"]:
                raise serializers.ValidationError(notifications.MSG_IDS_OR_ALL)
            return attrs

    class Output(serializers.Serializer):
        marked_read = serializers.IntegerField()
        unread = serializers.IntegerField()

    @extend_schema(request=Input, responses=Output)
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        marked = notifications.notification_mark_read(
            user=request.user, ids=data.validated_data.get("ids"), mark_all=data.validated_data["all"],
            ip=request.META.get("REMOTE_ADDR"),
        )
        return Response(self.Output({"marked_read": marked, "unread": notifications.unread_count(request.user)}).data)


class WebhookOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "name", "url", "events", "is_active", "created_by", "created_at"]


class WebhookCreatedOutput(WebhookOutput):
    secret = serializers.CharField(help_text="The signing secret, shown only in this response.")

    class Meta(WebhookOutput.Meta):
        fields = [*WebhookOutput.Meta.fields, "secret"]


class WebhookListCreateApi(APIView):
    """Admins: the webhooks (never their secrets), and creating one."""

    permission_classes = [IsAdmin]

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        url = serializers.CharField(max_length=500, help_text="An http:// or https:// address.")
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=list(notifications.EVENTS)), required=False, default=list,
            max_length=len(notifications.EVENTS), help_text="Event names; empty for every event.",
        )

    @extend_schema(responses=WebhookOutput(many=True))
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(notifications.webhooks(), request, view=self)
        return paginator.get_paginated_response(WebhookOutput(page, many=True).data)

    @extend_schema(request=Input, responses={201: WebhookCreatedOutput})
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        webhook, secret = notifications.webhook_create(
            admin=request.user, ip=request.META.get("REMOTE_ADDR"), **data.validated_data
        )
        webhook.secret = secret
        return Response(WebhookCreatedOutput(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    """Admins: one webhook; DELETE removes it with its delivery log."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=WebhookOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookOutput(get_object_or_404(notifications.webhooks(), pk=pk)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        webhook = get_object_or_404(notifications.webhooks(), pk=pk)
        notifications.webhook_delete(admin=request.user, webhook=webhook, ip=request.META.get("REMOTE_ADDR"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListApi(APIView):
    """Admins: one webhook's delivery log, newest first."""

    permission_classes = [IsAdmin]

    class Output(serializers.ModelSerializer):
        class Meta:
            model = WebhookDelivery
            fields = ["id", "event", "payload", "status", "attempts", "last_status_code", "last_error",
                      "next_attempt_at", "created_at", "delivered_at"]

    @extend_schema(responses=Output(many=True))
    def get(self, request: Request, pk: int) -> Response:
        webhook = get_object_or_404(notifications.webhooks(), pk=pk)
        paginator = Pagination()
        page = paginator.paginate_queryset(notifications.deliveries_of(webhook), request, view=self)
        return paginator.get_paginated_response(self.Output(page, many=True).data)

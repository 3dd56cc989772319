"""Accounts REST operations: token authentication, tokens, who am I, audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiToken, AuditEvent, TokenScope
from opsportal.api import Pagination
from opsportal.roles import Role, role_permission, user_roles

MSG_BAD_CREDENTIALS = "Wrong username or password."


class TokenOutput(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "scope", "key_prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class TokenCreatedOutput(TokenOutput):
    token = serializers.CharField(help_text="The secret, shown only in this response.")

    class Meta(TokenOutput.Meta):
        fields = [*TokenOutput.Meta.fields, "token"]


class TokenSettingsInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, default="API token")
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.FULL)
    expires_in_days = serializers.IntegerField(
        min_value=0, max_value=services.MAX_TOKEN_DAYS, required=False,
        help_text="0 for no expiry; default from API_TOKEN_DEFAULT_DAYS.",
    )


def _expiry_days(data: dict[str, Any]) -> int | None:
    days = data.get("expires_in_days", settings.API_TOKEN_DEFAULT_DAYS)
    return days or None


def _created(token: ApiToken, raw: str) -> Response:
    token.token = raw  # type: ignore[attr-defined]
    return Response(TokenCreatedOutput(token).data, status=status.HTTP_201_CREATED)


class AuthTokenApi(APIView):
    """Exchange a username and password for a new API token."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle, ScopedRateThrottle]
    throttle_scope = "auth"

    class Input(TokenSettingsInput):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=256, style={"input_type": "password"})

    def get_authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'  # wrong credentials are a 401, not a 403

    @extend_schema(request=Input, responses={201: TokenCreatedOutput}, auth=[])
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        django_request = request._request
        issued = services.token_issue_for_credentials(
            request=django_request, username=data.validated_data["username"],
            password=data.validated_data["password"], name=data.validated_data["name"],
            expires_in_days=_expiry_days(data.validated_data), scope=data.validated_data["scope"],
        )
        if issued is None:
            raise exceptions.AuthenticationFailed(MSG_BAD_CREDENTIALS)
        return _created(*issued)


class TokenListCreateApi(APIView):
    """Your own API tokens (never their secrets), and creating one."""

    @extend_schema(responses=TokenOutput(many=True))
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.tokens_of(request.user), request, view=self)
        return paginator.get_paginated_response(TokenOutput(page, many=True).data)

    @extend_schema(request=TokenSettingsInput, responses={201: TokenCreatedOutput})
    def post(self, request: Request) -> Response:
        data = TokenSettingsInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.token_create(
            user=request.user, name=data.validated_data["name"],
            expires_in_days=_expiry_days(data.validated_data), ip=request.META.get("REMOTE_ADDR"),
            scope=data.validated_data["scope"],
        )
        return _created(token, raw)


class TokenRevokeApi(APIView):
    """Revoke one of your tokens. The row stays, for the audit trail."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        token = get_object_or_404(selectors.tokens_of(request.user), pk=pk)
        services.token_revoke(token=token, actor=request.user, ip=request.META.get("REMOTE_ADDR"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        email = serializers.EmailField(allow_blank=True)
        is_admin = serializers.BooleanField()
        roles = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses=Output)
    def get(self, request: Request) -> Response:
        user = request.user
        return Response(self.Output({
            "id": user.pk, "username": user.get_username(), "email": user.email,
            "is_admin": user.is_staff, "roles": sorted(user_roles(user)),
        }).data)


class AuditEventListApi(APIView):
    """The audit trail, newest first; approvers and admins only."""

    permission_classes = [role_permission(Role.APPROVER)]

    class Output(serializers.ModelSerializer):
        class Meta:
            model = AuditEvent
            fields = ["id", "created_at", "actor_label", "action", "target_type", "target_id",
                      "target_label", "payload", "ip", "prev_hash", "hash"]

    class Filters(serializers.Serializer):
        action = serializers.CharField(required=False, max_length=100)
        actor = serializers.CharField(required=False, max_length=150)
        target_type = serializers.CharField(required=False, max_length=100)
        target_id = serializers.CharField(required=False, max_length=64)

    @extend_schema(parameters=[Filters], responses=Output(many=True))
    def get(self, request: Request) -> Response:
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.audit_events(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(self.Output(page, many=True).data)

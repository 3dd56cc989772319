"""DRF authentication by personal API token.

Kept apart from `api.py`: DRF imports authentication classes while loading
its own views, so this module must not import `rest_framework.views`.
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts import selectors, services
from accounts.models import ApiToken, TokenScope

MSG_TOKEN_INVALID = "Invalid API token."
MSG_TOKEN_EXPIRED = "This API token has expired; create a new one."
MSG_TOKEN_REVOKED = "This API token has been revoked."
MSG_USER_INACTIVE = "This account is disabled."
MSG_SCOPE = "This token may only call real-time prediction endpoints."


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <secret>` or `Authorization: Bearer <secret>`."""

    keywords = ("token", "bearer")

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(MSG_TOKEN_INVALID)
        try:
            raw = parts[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(MSG_TOKEN_INVALID) from None
        user, token = self.check(selectors.token_for_secret(raw))
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if token.scope == TokenScope.PREDICT and not getattr(view, "allows_predict_scope", False):
            raise exceptions.PermissionDenied(MSG_SCOPE)
        return user, token

    @staticmethod
    def check(token: ApiToken | None) -> tuple[Any, ApiToken]:
        """The token's user, or the reason the token is refused; records its use."""
        if token is None:
            raise exceptions.AuthenticationFailed(MSG_TOKEN_INVALID)
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(MSG_TOKEN_REVOKED)
        if token.is_expired:
            raise exceptions.AuthenticationFailed(MSG_TOKEN_EXPIRED)
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(MSG_USER_INACTIVE)
        services.token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'

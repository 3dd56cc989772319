"""API base: the error body every endpoint answers with, and pagination.

Errors are always `{"error": {"code", "message", "details"}}` with the right
status, including those Django raises before a view runs (body too large,
too many fields) so an API client never sees an HTML page.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from opsportal.errors import DomainError

logger = logging.getLogger(__name__)

DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}
MSG_VALIDATION = "The request has invalid fields; see details."
MSG_TOO_BIG = "The request body is larger than this server accepts."
MSG_TOO_MANY = "The request has too many fields or files."
MSG_BAD_REQUEST = "The request could not be understood."
MSG_NOT_FOUND = "Not found."
MSG_SERVER = "Something went wrong on our side; the error has been logged."
MSG_UNAVAILABLE = "A service OpsPortal depends on is unavailable right now; try again in a moment."


class ApiError(exceptions.APIException):
    """A domain error with its own code, e.g. `ApiError(409, "conflict", MSG)`."""

    def __init__(self, status_code: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.details = details or {}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status_code: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status_code)


def _unavailable(exc: Exception) -> bool:
    """The database or the broker is down (a restart, a network blip): a 503 to retry, not a 500."""
    from django.db import InterfaceError
    from django.db import OperationalError as DatabaseDown
    from kombu.exceptions import OperationalError as BrokerDown

    return isinstance(exc, (DatabaseDown, InterfaceError, BrokerDown))


def _django_error(exc: Exception) -> tuple[int, str, str] | None:
    if _unavailable(exc):
        logger.warning("Dependency unavailable: %s: %s", type(exc).__name__, exc)
        return 503, "unavailable", MSG_UNAVAILABLE
    if isinstance(exc, RequestDataTooBig):
        return 413, "too_large", MSG_TOO_BIG
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return 400, "too_many_fields", MSG_TOO_MANY
    if isinstance(exc, SuspiciousOperation):
        return 400, "bad_request", MSG_BAD_REQUEST
    if isinstance(exc, Http404):
        return 404, "not_found", MSG_NOT_FOUND
    if isinstance(exc, PermissionDenied):
        return 403, "permission_denied", str(exc) or exceptions.PermissionDenied.default_detail
    return None


def _drf_error(exc: exceptions.APIException) -> tuple[str, str, Any]:
    if isinstance(exc, ApiError):
        return exc.error_code, str(exc.detail), exc.details
    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return code, MSG_VALIDATION, details
    if isinstance(exc, exceptions.Throttled):
        return code, str(exc.detail), {"retry_after_seconds": exc.wait}
    return code, str(exc.detail), {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    django_error = _django_error(exc)
    if django_error is not None:
        status_code, code, message = django_error
        return Response(error_body(code, message), status=status_code)
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's 500 handler answers with JSON for /api/
    code, message, details = _drf_error(exc)
    response = Response(error_body(code, message, details), status=exc.status_code)
    if getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(int(exc.wait))
    return response


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


STATUS_CODES = {
    status.HTTP_400_BAD_REQUEST: ("bad_request", MSG_BAD_REQUEST),
    status.HTTP_403_FORBIDDEN: ("permission_denied", exceptions.PermissionDenied.default_detail),
    status.HTTP_404_NOT_FOUND: ("not_found", MSG_NOT_FOUND),
    status.HTTP_500_INTERNAL_SERVER_ERROR: ("server_error", MSG_SERVER),
}


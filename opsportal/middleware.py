"""Request bounds enforced before any view reads the body.

DRF's parsers read the request stream directly, bypassing Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check, so the declared length is checked here:
multipart uploads up to MAX_UPLOAD_BYTES, any other body up to
DATA_UPLOAD_MAX_MEMORY_SIZE. Bigger requests get 413 and are never read.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from opsportal.api import MSG_TOO_BIG, error_response


def request_limit(request: HttpRequest) -> int:
    if request.content_type == "multipart/form-data":
        return settings.MAX_UPLOAD_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = request_limit(request)
        if length > limit:
            return error_response(413, "too_large", MSG_TOO_BIG, {"limit_bytes": limit, "received_bytes": length})
        return self.get_response(request)

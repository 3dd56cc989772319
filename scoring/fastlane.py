"""The real-time prediction fast lane: the common, successful call without DRF's general machinery.

A business system calling `POST /api/v1/models/{name}/predict` (or `…/versions/{n}/predict`)
with a token and a JSON body is the one hot path of the web tier. DRF's request
wrapping, content negotiation, URL resolution and the other middleware cost
about as much as scoring itself, so this middleware answers that call directly,
through the very same functions the DRF view uses (token check, roles, model
visibility, throttle, `scoring.services.predict`, the JSON renderer, the error body).

Anything unusual falls through to the DRF view, untouched, which then gives its
usual answer: a session (browser) caller, a missing, bad, expired or revoked token,
a role without access, a refused throttle, another content type, `?explain=1`, an
unknown query parameter or a body that is not JSON. Nothing is recorded before a
fall-through except the parse of the body, so no call is counted twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from accounts.authentication import ApiTokenAuthentication
from accounts.selectors import token_for_secret
from opsportal.api import MSG_NOT_FOUND, MSG_TOO_BIG, error_response
from opsportal.errors import DomainError
from opsportal.roles import Role, has_role
from registry.models import AliasName
from registry.selectors import model_for_scoring
from scoring import services
from scoring.throttling import PredictRateThrottle

PREDICT_PATH = re.compile(r"^/api/v1/models/(?P<name>[^/]+)/(?:versions/(?P<number>[0-9]{1,9})/)?predict$")
SCORER_ROLES = (Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)
AUTH_KEYWORDS = ("token", "bearer")
_renderer = JSONRenderer()


class PredictFastLaneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            match = PREDICT_PATH.match(request.path_info)
            if match is not None:
                response = fast_predict(request, match.group("name"), match.group("number"))
                if response is not None:
                    return response
        return self.get_response(request)


def _render(result: dict[str, Any]) -> bytes:
    """The same JSON as DRF's renderer gives, made by orjson (a twentieth of the time)."""
    try:
        return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return _renderer.render(result)


def _alias(request: HttpRequest) -> tuple[bool, str | None]:
    """(usable here, alias): only `?alias=<known alias>` or no query at all."""
    if not request.GET:
        return True, None
    alias = request.GET.get("alias")
    if set(request.GET) != {"alias"} or alias not in AliasName.values:
        return False, None
    return True, alias


def _body(request: HttpRequest) -> Any:
    if request.content_type != "application/json":
        return None
    try:  # anything orjson refuses (NaN literals, integers past 64 bits) is left to DRF's parser
        return orjson.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None


def _caller(request: HttpRequest) -> Any:
    """The active token of a scorer, with its user; None for anything DRF should judge.
    Validity is decided by the DRF authentication class itself (revoked, expired, inactive)."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2 or parts[0].lower() not in AUTH_KEYWORDS:
        return None
    try:
        user, token = ApiTokenAuthentication.check(token_for_secret(parts[1]))
    except exceptions.APIException:
        return None
    return token if has_role(user, *SCORER_ROLES) else None


def fast_predict(request: HttpRequest, name: str, number: str | None) -> HttpResponse | None:
    """The response, or None to let the DRF view answer."""
    usable, alias = _alias(request)
    if not usable or (number is not None and alias is not None):
        return None
    try:
        body = _body(request)
    except RequestDataTooBig:
        return error_response(413, "too_large", MSG_TOO_BIG)
    token = _caller(request) if body is not None else None
    if token is None:
        return None
    if not PredictRateThrottle().allow_request(SimpleNamespace(auth=token, user=token.user), None):
        return None  # DRF refuses it again, with Retry-After
    version = int(number) if number is not None else None
    try:
        model, pk = model_for_scoring(token.user, name, alias=alias or AliasName.CHAMPION, number=version)
        result = services.predict(model=model, body=body, alias=alias, number=version, version_pk=pk)
    except Http404:
        return error_response(404, "not_found", MSG_NOT_FOUND)
    except DomainError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    response = HttpResponse(_render(result), content_type="application/json")
    response["Vary"] = "Accept"
    return response

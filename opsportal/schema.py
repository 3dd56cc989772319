"""OpenAPI generation: component names and the token security scheme.

Imported by `opsportal.urls`, after DRF has loaded, so drf-spectacular's
extension registry sees the classes here.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework.fields import empty


class AutoSchema(SpectacularAutoSchema):
    """Name nested serializers after their view: `MeApi.Output` → component `MeOutput`; document
    the page envelope of views that paginate."""

    def _get_serializer_field_meta(self, field: Any, direction: str) -> dict[str, Any]:
        """An output field declared with `default=None` answers null when its source is missing (a
        version without a parent, an undecided request), so the schema must say nullable; found by
        the schemathesis run on many outputs."""
        meta = super()._get_serializer_field_meta(field, direction)
        if direction == "response" and getattr(field, "default", empty) is None:
            meta["nullable"] = True
        return meta

    def _get_paginator(self) -> Any:
        """Views are plain APIViews that page with `opsportal.api.Pagination()` inside the handler, so
        drf-spectacular sees no `pagination_class` and documented a bare array for a
        `{count, next, previous, results}` body (found by the schemathesis run)."""
        found = super()._get_paginator()
        if found is not None:
            return found
        handler = getattr(self.view, self.method.lower(), None)
        if "Pagination" in getattr(getattr(handler, "__code__", None), "co_names", ()):
            from opsportal.api import Pagination

            return Pagination()
        return None

    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        qualname = type(serializer).__qualname__
        if "." not in qualname:
            return super().get_serializer_name(serializer, direction)
        return qualname.replace("Api.", "").replace(".", "")


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token: `Authorization: Bearer opk_…` (or `Token opk_…`).",
        }

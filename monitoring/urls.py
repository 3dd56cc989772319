"""Monitoring: pages (`urlpatterns`) and REST operations (`api_urlpatterns`, under /api/v1/)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "monitoring"

urlpatterns: list[URLPattern] = []
api_urlpatterns: list[URLPattern] = []

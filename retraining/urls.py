"""Retraining: pages (`urlpatterns`, under /retraining/) and REST operations (`api_urlpatterns`, under /api/v1/)."""

from __future__ import annotations

from django.urls import path

from retraining import api, views

app_name = "retraining"

urlpatterns = [
    path("", views.run_list, name="runs"),
    path("models/<slug:name>/", views.recipe_edit, name="recipe"),
    path("models/<slug:name>/run/", views.run_start, name="run-start"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/live/", views.run_live, name="run-live"),
]

api_urlpatterns = [
    path("models/<slug:name>/retraining/runs/", api.RunListCreateApi.as_view(), name="api-retraining-runs"),
    path("retraining/runs/<int:pk>/", api.RunDetailApi.as_view(), name="api-retraining-run"),
]

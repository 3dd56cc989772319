"""Scoring: pages (`urlpatterns`) and REST operations (`api_urlpatterns`, under /api/v1/)."""

from __future__ import annotations

from django.urls import URLPattern, path

from scoring import api, views

app_name = "scoring"

urlpatterns: list[URLPattern] = [
    path("", views.job_list, name="jobs"),
    path("new/", views.job_create, name="job-create"),
    path("<int:pk>/", views.job_detail, name="job"),
    path("<int:pk>/progress/", views.job_progress, name="job-progress"),
    path("<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("models/<slug:name>/traffic/", views.traffic, name="config"),
]
api_urlpatterns = [
    path("scoring-jobs/", api.JobListCreateApi.as_view(), name="api-scoring-jobs"),
    path("scoring-jobs/<int:pk>/", api.JobDetailApi.as_view(), name="api-scoring-job"),
    path("scoring-jobs/<int:pk>/cancel/", api.JobCancelApi.as_view(), name="api-scoring-job-cancel"),
    path("scoring-jobs/<int:pk>/result", api.JobResultApi.as_view(), name="api-scoring-job-result"),
    path("models/<slug:name>/predict", api.PredictApi.as_view(), name="api-predict"),
    path("models/<slug:name>/scoring-config/", api.ScoringConfigApi.as_view(), name="api-scoring-config"),
    path("models/<slug:name>/versions/<int:number>/predict", api.VersionPredictApi.as_view(),
         name="api-version-predict"),
]

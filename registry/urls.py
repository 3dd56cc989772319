"""Registry pages (`urlpatterns`, under /models/) and REST operations (`api_urlpatterns`, under /api/v1/)."""

from __future__ import annotations

from django.urls import path

from registry import api, views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("new/", views.model_create, name="create"),
    path("safety/", views.safety_settings, name="safety"),
    path("<slug:name>/", views.model_detail, name="detail"),
    path("<slug:name>/edit/", views.model_edit, name="edit"),
    path("<slug:name>/upload/", views.version_upload, name="upload"),
    path("<slug:name>/compare/", views.version_compare, name="compare"),
    path("<slug:name>/versions/<int:number>/", views.version_detail, name="version"),
    path("<slug:name>/versions/<int:number>/status/", views.version_status, name="version-status"),
    path("<slug:name>/versions/<int:number>/edit/", views.version_edit, name="version-edit"),
    path("<slug:name>/versions/<int:number>/download/", views.version_download, name="version-download"),
    path(
        "<slug:name>/versions/<int:number>/accept-sklearn-version/",
        views.version_accept_mismatch,
        name="version-accept-mismatch",
    ),
]

api_urlpatterns = [
    path("models/", api.ModelListCreateApi.as_view(), name="api-models"),
    path("models/<slug:name>/", api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<slug:name>/compare/", api.VersionCompareApi.as_view(), name="api-model-compare"),
    path("models/<slug:name>/versions/", api.VersionListCreateApi.as_view(), name="api-versions"),
    path("models/<slug:name>/versions/<int:number>/", api.VersionDetailApi.as_view(), name="api-version"),
    path(
        "models/<slug:name>/versions/<int:number>/artifact/",
        api.VersionArtifactApi.as_view(),
        name="api-version-artifact",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/accept-sklearn-version/",
        api.VersionAcceptMismatchApi.as_view(),
        name="api-version-accept-mismatch",
    ),
    path("registry/trusted-types/", api.TrustedTypeListCreateApi.as_view(), name="api-trusted-types"),
    path("registry/trusted-types/<int:pk>/", api.TrustedTypeDeleteApi.as_view(), name="api-trusted-type"),
    path("registry/policy/", api.RegistryPolicyApi.as_view(), name="api-registry-policy"),
]

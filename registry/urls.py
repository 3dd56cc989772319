"""Registry pages (`urlpatterns`, under /models/) and REST operations (`api_urlpatterns`, under /api/v1/)."""

from __future__ import annotations

from django.urls import path

from registry import api, views, views_governance

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("new/", views.model_create, name="create"),
    path("safety/", views.safety_settings, name="safety"),
    path("policy/", views_governance.default_policy, name="default-policy"),
    path("delivery/", views_governance.delivery_metrics, name="delivery"),
    path("<slug:name>/", views.model_detail, name="detail"),
    path("<slug:name>/edit/", views.model_edit, name="edit"),
    path("<slug:name>/history/", views_governance.model_history, name="history"),
    path("<slug:name>/rollback/", views_governance.model_rollback, name="rollback"),
    path("<slug:name>/policy/", views_governance.model_policy, name="policy"),
    path("<slug:name>/versions/<int:number>/promote/", views_governance.promotion_open, name="promote"),
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

# Mounted under /approvals/.
approval_urlpatterns = [
    path("", views_governance.approvals_inbox, name="approvals"),
    path("<int:pk>/", views_governance.promotion_detail, name="promotion"),
    path("<int:pk>/decide/", views_governance.promotion_decide, name="promotion-decide"),
    path("<int:pk>/comment/", views_governance.promotion_comment, name="promotion-comment"),
    path("<int:pk>/override/", views_governance.promotion_override, name="promotion-override"),
    path("<int:pk>/withdraw/", views_governance.promotion_withdraw, name="promotion-withdraw"),
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
    path(
        "models/<slug:name>/versions/<int:number>/promotions/", api.PromotionOpenApi.as_view(), name="api-promote"
    ),
    path("models/<slug:name>/rollback/", api.ModelRollbackApi.as_view(), name="api-rollback"),
    path("models/<slug:name>/history/", api.ModelHistoryApi.as_view(), name="api-history"),
    path("models/<slug:name>/policy/", api.ModelPolicyApi.as_view(), name="api-model-policy"),
    path("models/<slug:name>/evaluation-data/", api.EvaluationDataApi.as_view(), name="api-evaluation-data"),
    path("promotions/", api.PromotionListApi.as_view(), name="api-promotions"),
    path("promotions/<int:pk>/", api.PromotionDetailApi.as_view(), name="api-promotion"),
    path("promotions/<int:pk>/approve/", api.PromotionApproveApi.as_view(), name="api-promotion-approve"),
    path("promotions/<int:pk>/reject/", api.PromotionRejectApi.as_view(), name="api-promotion-reject"),
    path("promotions/<int:pk>/withdraw/", api.PromotionWithdrawApi.as_view(), name="api-promotion-withdraw"),
    path("promotions/<int:pk>/comments/", api.PromotionCommentApi.as_view(), name="api-promotion-comments"),
    path("promotions/<int:pk>/overrides/", api.GateOverrideApi.as_view(), name="api-promotion-overrides"),
    path("policies/default/", api.DefaultPolicyApi.as_view(), name="api-default-policy"),
    path("registry/trusted-types/", api.TrustedTypeListCreateApi.as_view(), name="api-trusted-types"),
    path("registry/trusted-types/<int:pk>/", api.TrustedTypeDeleteApi.as_view(), name="api-trusted-type"),
    path("registry/policy/", api.RegistryPolicyApi.as_view(), name="api-registry-policy"),
]

"""Business feedback: pages (`urlpatterns`, under /campaigns/) and REST operations (`api_urlpatterns`)."""

from __future__ import annotations

from django.urls import URLPattern, path

from feedback import api, views

app_name = "feedback"

urlpatterns: list[URLPattern] = [
    path("", views.campaign_list, name="list"),
    path("new/", views.campaign_create, name="create"),
    path("compare/<slug:name>/", views.campaign_compare, name="compare"),
    path("labels/<slug:name>/", views.labels_upload, name="labels"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/audience/", views.audience_upload, name="audience"),
    path("<int:pk>/outcomes/", views.outcomes_upload, name="outcomes"),
    path("<int:pk>/uploads/<int:upload>/progress/", views.upload_progress, name="upload-progress"),
    path("<int:pk>/treatment.csv", views.treatment_export, name="treatment"),
    path("<int:pk>/analysis.csv", views.analysis_export, name="analysis-csv"),
    path("<int:pk>/analysis/", views.analysis_refresh, name="analysis-refresh"),
    path("<int:pk>/comments/", views.comment_add, name="comment"),
    path("<int:pk>/sign-off/", views.sign_off, name="sign-off"),
    path("<int:pk>/retraining/", views.retraining_request, name="retraining"),
]
api_urlpatterns = [
    path("campaigns/", api.CampaignListCreateApi.as_view(), name="api-campaigns"),
    path("campaigns/<int:pk>/", api.CampaignDetailApi.as_view(), name="api-campaign"),
    path("campaigns/<int:pk>/assignments/", api.CampaignAssignmentsApi.as_view(), name="api-campaign-assignments"),
    path("campaigns/<int:pk>/treatment/", api.CampaignTreatmentApi.as_view(), name="api-campaign-treatment"),
    path("campaigns/<int:pk>/outcomes/", api.CampaignOutcomesApi.as_view(), name="api-campaign-outcomes"),
    path("campaigns/<int:pk>/outcomes/uploads/<int:upload>/", api.OutcomeUploadDetailApi.as_view(),
         name="api-campaign-upload"),
    path("campaigns/<int:pk>/analysis/", api.CampaignAnalysisApi.as_view(), name="api-campaign-analysis"),
    path("campaigns/<int:pk>/comments/", api.CampaignCommentApi.as_view(), name="api-campaign-comments"),
    path("campaigns/<int:pk>/sign-offs/", api.CampaignSignOffApi.as_view(), name="api-campaign-sign-offs"),
    path("campaigns/<int:pk>/retraining-requests/", api.CampaignRetrainingRequestApi.as_view(),
         name="api-campaign-retraining"),
    path("models/<slug:name>/labels/", api.LabelsApi.as_view(), name="api-model-labels"),
]

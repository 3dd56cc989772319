from __future__ import annotations

from django.urls import path

from accounts import api, urls_notifications, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("audit/", views.audit, name="audit"),
    *urls_notifications.urlpatterns,
]

api_urlpatterns = [
    path("auth/token/", api.AuthTokenApi.as_view(), name="api-auth-token"),
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("tokens/", api.TokenListCreateApi.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", api.TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("audit/events/", api.AuditEventListApi.as_view(), name="api-audit-events"),
    *urls_notifications.api_urlpatterns,
]

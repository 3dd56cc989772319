"""Notification and webhook routes, for `accounts/urls.py` to include.

`urlpatterns` are pages under /accounts/ (namespace `accounts`);
`api_urlpatterns` are REST operations under /api/v1/.
"""

from __future__ import annotations

from django.urls import path

from accounts import api_notifications as api
from accounts import views_notifications as views

urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/read/", views.inbox_read, name="inbox-read"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
    path("webhooks/<int:pk>/deliveries/", views.webhook_deliveries, name="webhook-deliveries"),
]

api_urlpatterns = [
    path("notifications/", api.NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read/", api.NotificationReadApi.as_view(), name="api-notifications-read"),
    path("webhooks/", api.WebhookListCreateApi.as_view(), name="api-webhooks"),
    path("webhooks/<int:pk>/", api.WebhookDetailApi.as_view(), name="api-webhook"),
    path("webhooks/<int:pk>/deliveries/", api.WebhookDeliveryListApi.as_view(), name="api-webhook-deliveries"),
]

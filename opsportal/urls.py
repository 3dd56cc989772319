from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import opsportal.schema  # noqa: F401  (registers the OpenAPI auth extension)
from accounts import urls as accounts_urls
from feedback import urls as feedback_urls
from monitoring import urls as monitoring_urls
from monitoring import views as monitoring_views
from opsportal import views
from registry import urls as registry_urls
from retraining import urls as retraining_urls
from scoring import urls as scoring_urls

admin.site.site_header = "OpsPortal administration"
admin.site.site_title = "OpsPortal admin"

# Each app's urls.py holds its pages (`urlpatterns`) and its REST operations
# (`api_urlpatterns`), mounted here under /api/v1/.
APPS = [accounts_urls, registry_urls, scoring_urls, monitoring_urls, feedback_urls, retraining_urls]
api_v1 = [pattern for app in APPS for pattern in app.api_urlpatterns]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Prometheus scrapes the conventional path (token or signed-in approver, see MONITORING_METRICS_TOKEN).
    path("metrics", monitoring_views.metrics, name="metrics"),
    path("system/", views.system, name="system"),
    path("system/ping/", views.system_ping, name="system-ping"),
    path("system/pings/<int:pk>/row/", views.system_ping_row, name="system-ping-row"),
    path("accounts/", include("accounts.urls")),
    path("models/", include("registry.urls")),
    path("approvals/", include((registry_urls.approval_urlpatterns, "approvals"), namespace="approvals")),
    path("scoring/", include("scoring.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("campaigns/", include("feedback.urls")),
    path("retraining/", include("retraining.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = "opsportal.views.bad_request"
handler403 = "opsportal.views.permission_denied"
handler404 = "opsportal.views.page_not_found"
handler500 = "opsportal.views.server_error"

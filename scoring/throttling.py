"""Per-token throttling of real-time scoring, failing open when the cache is unreachable.

Each API token (or session user) has its own budget (`API_THROTTLE_PREDICT`). If the
shared cache (Redis) is down, predictions keep flowing: throttling is protection,
scoring is the product.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class PredictRateThrottle(SimpleRateThrottle):
    scope = "predict"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        token = getattr(request, "auth", None)
        ident = f"token-{token.pk}" if getattr(token, "pk", None) else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # cache unreachable: keep scoring
            logger.warning("Prediction throttle skipped: the cache is unreachable", exc_info=True)
            return True

"""Per-token throttling of real-time scoring, failing open when the cache is unreachable.

Each API token (or session user) has its own budget (`API_THROTTLE_PREDICT`). If the
shared cache (Redis) is down, predictions keep flowing: throttling is protection,
scoring is the product.

The budget is counted with a sliding window over two fixed-window counters (this
window's count plus the previous window's, weighted by how much of it still
overlaps the last `duration` seconds): two cache operations per request, whatever
the rate. DRF's own throttle keeps every request's timestamp in one cached list,
read and written whole on every call; at the default 60,000 per minute that list
alone cost more than scoring the row.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class PredictRateThrottle(SimpleRateThrottle):
    scope = "predict"
    retry_after: float | None = None

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        token = getattr(request, "auth", None)
        ident = f"token-{token.pk}" if getattr(token, "pk", None) else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        try:
            return self._take(key)
        except Exception:  # cache unreachable: keep scoring
            logger.warning("Prediction throttle skipped: the cache is unreachable", exc_info=True)
            return True

    def _take(self, key: str) -> bool:
        """Count this request unless the sliding-window estimate would pass the budget (refusals are not counted)."""
        window, offset = divmod(self.timer(), self.duration)
        current_key, previous_key = f"{key}:{int(window)}", f"{key}:{int(window) - 1}"
        counts = self.cache.get_many([previous_key, current_key])
        previous, current = counts.get(previous_key, 0), counts.get(current_key, 0)
        overlap = 1 - offset / self.duration
        if previous * overlap + current + 1 > self.num_requests:
            self.retry_after = self._retry_after(previous, current, offset)
            return False
        if not self.cache.add(current_key, 1, 2 * self.duration):
            try:
                self.cache.incr(current_key)
            except ValueError:  # expired between add and incr
                self.cache.set(current_key, 1, 2 * self.duration)
        return True

    def _retry_after(self, previous: int, current: int, offset: float) -> float:
        """Seconds until one more request fits: the previous window's weight falls as time passes."""
        left_in_window = self.duration - offset
        if current + 1 > self.num_requests or previous <= 0:
            return left_in_window
        # previous * (1 - (offset + t) / duration) + current + 1 <= num_requests
        needed = self.duration * (1 - (self.num_requests - current - 1) / previous) - offset
        return min(max(needed, 0.0), left_in_window)

    def wait(self) -> float | None:
        return self.retry_after

"""The prediction throttle: a sliding window over two counters, per token, failing open."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.cache import cache

from scoring.throttling import PredictRateThrottle


class Clocked(PredictRateThrottle):
    THROTTLE_RATES = {"predict": "2/min"}
    now = 6000.0  # a window boundary

    def timer(self) -> float:
        return self.now


def ask(at: float, token: int = 1) -> tuple[bool, float | None]:
    throttle = Clocked()
    throttle.now = 6000.0 + at
    allowed = throttle.allow_request(SimpleNamespace(auth=SimpleNamespace(pk=token), user=None), None)
    return allowed, throttle.wait()


def test_it_allows_the_budget_and_refuses_the_next_until_the_window_ends():
    assert [ask(0)[0], ask(1)[0]] == [True, True]
    assert ask(2) == (False, 58.0)


def test_the_previous_window_still_counts_for_its_overlap():
    ask(0), ask(1)
    allowed, wait = ask(61)  # a new window, but the last minute still holds two requests
    assert (allowed, wait) == (False, 29.0)
    assert ask(61 + wait)[0] is True
    assert ask(61 + wait + 1)[0] is False


def test_refused_requests_do_not_use_the_budget():
    ask(0), ask(1)
    for second in range(2, 50):
        ask(second)
    assert ask(120)[0] is True


def test_each_token_has_its_own_budget():
    ask(0), ask(1)
    assert ask(2, token=2)[0] is True


def test_it_keeps_scoring_when_the_cache_is_down(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get_many", broken)
    assert all(ask(second)[0] for second in range(5))


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()

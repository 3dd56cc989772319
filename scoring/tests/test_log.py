"""The prediction log writer stores rows exactly as the ORM would read them back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scoring import log
from scoring.models import PredictionLog

pytestmark = pytest.mark.django_db

TIMES = [
    datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC),  # no microseconds: another text form
    datetime(2026, 3, 1, 14, 30, 6, 1, tzinfo=timezone(timedelta(hours=2))),  # not UTC: converted
]


def test_logged_times_and_ids_read_back_unchanged(ready_version):
    rows = [log.LogRow(at, ready_version.model_id, ready_version.pk, str(uuid.uuid4()), f"c{n}", "realtime",
                       log.encode({"tenure": n}), log.encode("No"), None, None, 1.5)
            for n, at in enumerate(TIMES)]
    log.discard()
    log.record(rows)
    assert log.flush() == len(TIMES)
    stored = PredictionLog.objects.order_by("entity_id")
    assert [r.created_at for r in stored] == TIMES
    assert [str(r.request_id) for r in stored] == [r.request_id for r in rows]
    assert PredictionLog.objects.filter(created_at__gte=TIMES[1]).count() == 3  # time windows compare right
    assert list(PredictionLog.objects.filter(created_at__gt=TIMES[0]).values_list("entity_id", flat=True)) == ["c2"]

"""A monitoring run requested like the API does is executed by a real Celery worker."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import wait_for
from monitoring import services
from monitoring.models import MonitoringRun, RunStatus
from monitoring.tests.helpers import log_predictions
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_it_runs_a_check_on_the_worker(ready_version: ModelVersion, celery_worker_process: Any) -> None:
    current = churn_frame(300, seed=61)
    current["tenure"] = current["tenure"] + 30
    log_predictions(ready_version, current)
    run = services.run_request(model=ready_version.model, user=None, version=ready_version)

    def finished() -> MonitoringRun | None:
        found = MonitoringRun.objects.get(pk=run.pk)
        return found if found.is_finished else None

    done = wait_for(finished, timeout=180, interval=0.5)
    assert done.status == RunStatus.SUCCEEDED, done.status_reason
    assert done.features.get(column="tenure").drifted
    assert done.report_key  # Evidently rendered the report on the worker too

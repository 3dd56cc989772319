"""A big outcome file on a real worker: read in chunks with progress, then the analysis is refreshed by the worker."""

from __future__ import annotations

import pytest
from django.test import override_settings

from conftest import wait_for
from feedback import outcomes
from feedback.models import CampaignAnalysis, OutcomeUpload
from feedback.tests.fixtures import churn_outcomes
from feedback.tests.test_outcomes import csv_of
from registry.tests.fixtures import upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@override_settings(FEEDBACK_INLINE_UPLOAD_BYTES=100)
def test_a_worker_reads_a_big_outcome_file_and_refreshes_the_analysis(celery_worker_process, assigned,
                                                                      business_owner):
    data = csv_of(churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35))
    pending = outcomes.outcomes_from_file(campaign=assigned, user=business_owner, upload_file=upload(data))
    assert pending.status == "queued"
    wait_for(lambda: OutcomeUpload.objects.get(pk=pending.pk).is_finished, timeout=60)
    pending.refresh_from_db()
    assert (pending.status, pending.created, pending.rows_failed) == ("done", 2000, 0)
    assigned.refresh_from_db()
    cached = wait_for(lambda: CampaignAnalysis.objects.filter(campaign=assigned,
                                                              data_version=assigned.data_version).first(), timeout=60)
    assert cached.result["kpis"][0]["comparisons"][0]["verdict"] == "better"

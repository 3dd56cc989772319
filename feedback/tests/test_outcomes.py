"""Outcome uploads: idempotent upserts, per-row errors with good rows kept, big files on a worker's path."""

from __future__ import annotations

import pytest
from django.test import override_settings

from feedback import outcomes
from feedback.models import Outcome, UploadStatus
from feedback.outcomes import MSG_NO_AUDIENCE
from feedback.tests.fixtures import churn_outcomes, upload_json
from opsportal.errors import DomainError
from registry.tests.fixtures import upload

pytestmark = pytest.mark.django_db


def csv_of(records):
    lines = ["entity_id,kpi,value,observed_at"] + [
        f"{r['entity_id']},{r['kpi']},{r['value']},{r.get('observed_at', '')}" for r in records]
    return ("\n".join(lines) + "\n").encode()


def snapshot(campaign):
    return list(Outcome.objects.filter(campaign=campaign).order_by("pk").values_list(
        "pk", "entity_id", "value", "observed_at", "updated_at"))


def test_it_stores_outcomes_with_their_group(assigned, business_owner):
    upload_json(assigned, business_owner, [{"entity_id": "c1", "kpi": "churned", "value": 1}])
    outcome = Outcome.objects.get(campaign=assigned)
    assignment = assigned.assignments.get(entity_id="c1")
    assert (outcome.arm_id, outcome.decile, outcome.value) == (assignment.arm_id, assignment.decile, 1.0)


def test_uploading_the_same_file_twice_changes_nothing(assigned, business_owner):
    churn = churn_outcomes(assigned, treated_rate=0.2, holdout_rate=0.3)[:300]
    data = csv_of([*churn, {"entity_id": "c5", "kpi": "spend", "value": 12.5}])
    first = outcomes.outcomes_from_file(campaign=assigned, user=business_owner, upload_file=upload(data, "o.csv"))
    before = snapshot(assigned)
    second = outcomes.outcomes_from_file(campaign=assigned, user=business_owner, upload_file=upload(data, "o.csv"))
    assert (first.created, first.updated, first.unchanged) == (301, 0, 0)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 301)
    assert snapshot(assigned) == before


def test_a_changed_value_updates_the_row(assigned, business_owner):
    upload_json(assigned, business_owner, [{"entity_id": "c1", "kpi": "spend", "value": 10}])
    again = upload_json(assigned, business_owner, [{"entity_id": "c1", "kpi": "spend", "value": 12}])
    assert (again.created, again.updated) == (0, 1)
    assert Outcome.objects.get(campaign=assigned).value == 12


def test_it_reports_bad_rows_and_keeps_the_good_ones(assigned, business_owner):
    records = [
        {"entity_id": "c1", "kpi": "churned", "value": 1},
        {"entity_id": "nobody", "kpi": "churned", "value": 1},
        {"entity_id": "c2", "kpi": "revenue", "value": 3},
        {"entity_id": "c3", "kpi": "churned", "value": 2},
        {"entity_id": "c4", "kpi": "spend", "value": "lots"},
        {"entity_id": "c5", "kpi": "spend", "value": 3, "observed_at": "yesterday"},
        {"entity_id": "c1", "kpi": "churned", "value": 0},
        {"entity_id": "c6", "kpi": "spend", "value": 4.5, "observed_at": "2026-02-01"},
    ]
    result = upload_json(assigned, business_owner, records)
    assert (result.status, result.created, result.rows_failed) == (UploadStatus.DONE, 2, 6)
    assert [e["row"] for e in result.errors] == [2, 3, 4, 5, 6, 7]
    messages = [e["error"] for e in result.errors]
    assert messages[0] == "entity_id: 'nobody' is not in the campaign's audience."
    assert messages[1].startswith("kpi: 'revenue' is not a KPI of this campaign")
    assert messages[2] == "value: churned is a yes/no KPI, so the value must be 0 or 1, got 2."
    assert messages[3] == "value: expected a number, got 'lots'."
    assert messages[4].startswith("observed_at: expected an ISO date")
    assert messages[5].startswith("'c1' / churned appears again (first in row 1)")


def test_it_refuses_a_file_without_the_needed_columns(assigned, business_owner):
    with pytest.raises(DomainError) as refused:
        outcomes.outcomes_from_file(campaign=assigned, user=business_owner,
                                    upload_file=upload(b"customer,value\nc1,1\n", "o.csv"))
    assert "lacks the column(s) entity_id, kpi" in refused.value.message


def test_it_refuses_outcomes_before_the_audience(campaign, business_owner):
    with pytest.raises(DomainError) as refused:
        upload_json(campaign, business_owner, [{"entity_id": "c1", "kpi": "churned", "value": 1}])
    assert refused.value.message == MSG_NO_AUDIENCE


@override_settings(FEEDBACK_MAX_JSON_ROWS=3)
def test_it_bounds_the_rows_of_one_json_request(assigned, business_owner):
    with pytest.raises(DomainError) as refused:
        upload_json(assigned, business_owner, [{"entity_id": "c1", "kpi": "spend", "value": 1}] * 4)
    assert refused.value.status == 413


@override_settings(FEEDBACK_INLINE_UPLOAD_BYTES=100)
def test_a_big_file_waits_for_a_worker_then_is_read_in_chunks(assigned, business_owner,
                                                               django_capture_on_commit_callbacks):
    data = csv_of(churn_outcomes(assigned, treated_rate=0.2, holdout_rate=0.3))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        pending = outcomes.outcomes_from_file(campaign=assigned, user=business_owner, upload_file=upload(data))
    assert pending.status == UploadStatus.QUEUED and len(queued) == 1
    outcomes.outcome_upload_process(upload_id=pending.pk)  # what the task does
    pending.refresh_from_db()
    assert (pending.status, pending.total_rows, pending.rows_done, pending.percent) == ("done", 2000, 2000, 100.0)

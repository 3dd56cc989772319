"""Audiences: targeting, deterministic seeded assignment stratified by score decile, bring-your-own groups."""

from __future__ import annotations

from collections import Counter

import pytest

from accounts.models import AuditEvent
from feedback import services
from feedback.models import Assignment
from feedback.services import MSG_LOCKED, CampaignError
from feedback.tests.fixtures import churn_outcomes, rows, scored_list, upload_json
from scoring.tests.test_batch import read_csv, run_job, scoring_file

pytestmark = pytest.mark.django_db


def groups_of(campaign):
    return dict(campaign.assignments.values_list("entity_id", "arm__name"))


def test_it_assigns_the_same_groups_to_the_same_input(make_campaign, business_owner):
    first, second = make_campaign(), make_campaign()
    for campaign in (first, second):
        services.audience_from_scores(campaign=campaign, rows=rows(scored_list()), user=business_owner)
    assert groups_of(first) == groups_of(second)
    services.audience_from_scores(campaign=first, rows=rows(list(reversed(scored_list()))), user=business_owner)
    assert groups_of(first) == groups_of(second)


def test_another_seed_gives_other_groups(make_campaign, business_owner):
    first, second = make_campaign(), make_campaign(seed="other")
    for campaign in (first, second):
        services.audience_from_scores(campaign=campaign, rows=rows(scored_list()), user=business_owner)
    assert groups_of(first) != groups_of(second)


def test_it_splits_every_decile_in_the_planned_shares(assigned):
    per_decile = Counter(assigned.assignments.values_list("decile", "arm__is_holdout"))
    for decile in range(1, 11):
        holdout, treated = per_decile[(decile, True)], per_decile[(decile, False)]
        assert holdout + treated == 200
        assert holdout == 40  # 20% of each decile, exactly


def test_deciles_follow_the_score(assigned):
    top = assigned.assignments.filter(decile=1).values_list("score", flat=True)
    bottom = assigned.assignments.filter(decile=10).values_list("score", flat=True)
    assert min(top) > max(bottom)


def test_it_targets_the_top_n_scores(make_campaign, business_owner):
    campaign = make_campaign(targeting="top_n", target_count=300)
    report = services.audience_from_scores(campaign=campaign, rows=rows(scored_list()), user=business_owner)
    best = sorted((r["score"] for r in scored_list()), reverse=True)[:300]
    assert report.assigned == 300 and report.skipped == 1700
    assert min(campaign.assignments.values_list("score", flat=True)) == min(best)


def test_it_targets_scores_above_a_threshold(make_campaign, business_owner):
    campaign = make_campaign(targeting="threshold", score_threshold=0.9)
    services.audience_from_scores(campaign=campaign, rows=rows(scored_list()), user=business_owner)
    expected = sum(1 for r in scored_list() if r["score"] >= 0.9)
    assert campaign.assignments.count() == expected
    assert min(campaign.assignments.values_list("score", flat=True)) >= 0.9


def test_it_reports_bad_and_duplicate_rows_and_keeps_the_good_ones(campaign, business_owner):
    records = [{"entity_id": "a", "score": 0.4}, {"entity_id": "", "score": 0.3}, {"entity_id": "b", "score": "x"},
               {"entity_id": "a", "score": 0.9}, {"entity_id": "c", "score": 0.1}]
    report = services.audience_from_scores(campaign=campaign, rows=rows(records), user=business_owner)
    assert report.assigned == 2
    assert [(e["row"], e["error"]) for e in report.errors] == [
        (2, "entity_id: is empty."), (3, "score: expected a number, got 'x'."),
        (4, "entity_id 'a' already appears in row 1.")]


def test_it_takes_groups_as_given_and_names_unknown_ones(campaign, business_owner):
    records = [{"entity_id": "a", "group": "holdout"}, {"entity_id": "b", "group": "treatment"},
               {"entity_id": "c", "group": "control"}]
    report = services.audience_bring_your_own(campaign=campaign, rows=rows(records), user=business_owner)
    assert groups_of(campaign) == {"a": "holdout", "b": "treatment"}
    assert "'control' is not an arm of this campaign" in report.errors[0]["error"]


def test_it_audits_the_assignment(assigned):
    event = AuditEvent.objects.get(action="campaign.audience_assigned", target_id=str(assigned.pk))
    assert event.payload["assigned"] == 2000 and event.payload["by_arm"] == {"holdout": 400, "treatment": 1600}


def test_the_audience_is_locked_once_outcomes_arrive(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.2, holdout_rate=0.3)[:5])
    with pytest.raises(CampaignError) as refused:
        services.audience_from_scores(campaign=assigned, rows=rows(scored_list()), user=business_owner)
    assert (refused.value.status, refused.value.message) == (409, MSG_LOCKED)
    assert Assignment.objects.filter(campaign=assigned).count() == 2000


def test_it_resolves_the_alias_when_the_audience_is_built(make_campaign, business_owner, ready_version):
    from registry.models import ModelAlias

    ModelAlias.objects.create(model=ready_version.model, name="champion", version=ready_version)
    campaign = make_campaign(alias="champion")
    services.audience_from_scores(campaign=campaign, rows=rows(scored_list(50)), user=business_owner)
    campaign.refresh_from_db()
    assert campaign.version == ready_version
    assert set(campaign.assignments.values_list("version", flat=True)) == {ready_version.pk}


def test_it_takes_the_audience_from_a_finished_scoring_job(make_campaign, ready_version, data_scientist,
                                                           business_owner):
    job = run_job(ready_version, data_scientist, scoring_file(rows=600, bad_rows=(3,)))
    campaign = make_campaign()
    report = services.audience_from_job(campaign=campaign, job=job, user=business_owner)
    scores = {r["id"]: float(r["probability_Yes"]) for r in read_csv(job)}
    assert (report.assigned, len(scores)) == (599, 599)
    assert dict(campaign.assignments.values_list("entity_id", "score")) == scores
    assert set(campaign.assignments.values_list("version__number", flat=True)) == {1}

"""Campaign analysis: uplift with intervals, sample-ratio check, not-enough-data, deciles, hit rate, alerts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from statsmodels.stats.proportion import confint_proportions_2indep

from feedback import analysis, services
from feedback.models import CampaignAnalysis
from feedback.tests.fixtures import churn_outcomes, rows, upload_json
from monitoring.models import Alert, AlertStatus

pytestmark = pytest.mark.django_db


def analyse(campaign):
    return analysis.campaign_analyse(campaign_id=campaign.pk).result


def primary(result):
    return next(k for k in result["kpis"] if k["is_primary"])


def test_it_measures_the_uplift_against_the_holdout(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35))
    kpi = primary(analyse(assigned))
    holdout, treated = kpi["groups"]
    comparison = kpi["comparisons"][0]
    assert (holdout["n"], treated["n"]) == (400, 1600)
    assert comparison["diff"] == pytest.approx(treated["mean"] - holdout["mean"])
    events = (round(treated["total"]), round(holdout["total"]))
    low, high = confint_proportions_2indep(events[0], 1600, events[1], 400, method="newcomb", compare="diff")
    assert (comparison["low"], comparison["high"]) == (pytest.approx(low), pytest.approx(high))
    assert comparison["verdict"] == "better" and comparison["p_value"] < 1e-6
    assert comparison["incremental"] == pytest.approx(-comparison["diff"] * 1600)
    assert comparison["money"] == pytest.approx(comparison["incremental"] * 150)
    assert comparison["summary"].startswith("treatment lowered 90-day churn by")


def test_it_says_when_there_is_not_enough_data_yet_and_what_it_could_detect(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35)[:150])
    comparison = primary(analyse(assigned))["comparisons"][0]
    assert comparison["verdict"] == "not_enough_data" and not comparison["enough"]
    assert comparison["mde"] > 0.1
    assert comparison["summary"].startswith("Not enough data yet to tell whether treatment changed 90-day churn.")


def test_it_flags_a_sample_ratio_mismatch(campaign, business_owner):
    records = [{"entity_id": f"e{i}", "group": "holdout" if i % 2 else "treatment"} for i in range(1000)]
    services.audience_bring_your_own(campaign=campaign, rows=rows(records), user=business_owner)
    srm = analyse(campaign)["srm"]
    assert srm["checked"] and srm["mismatch"] and srm["p_value"] < 1e-10


def test_a_planned_split_passes_the_sample_ratio_check(assigned):
    srm = analyse(assigned)["srm"]
    assert srm["checked"] and not srm["mismatch"]


def test_it_gives_the_uplift_per_score_decile(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35))
    deciles = primary(analyse(assigned))["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert all(d["holdout_n"] == 40 and d["arms"][0]["n"] == 160 for d in deciles)


def test_it_reports_the_models_hit_rate_in_the_holdout(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35))
    hit = analyse(assigned)["hit_rate"]
    holdout_churn = assigned.outcomes.filter(arm__is_holdout=True, kpi__name="churned", value=1).count()
    assert (hit["flagged"], hit["hits"]) == (400, holdout_churn)


def test_it_counts_missing_outcomes_as_zero_when_asked(make_campaign, business_owner):
    from feedback.services import KpiSpec

    campaign = make_campaign(kpis=[KpiSpec("converted", missing_as_zero=True)])
    services.audience_bring_your_own(campaign=campaign, user=business_owner, rows=rows(
        [{"entity_id": f"e{i}", "group": "holdout" if i < 200 else "treatment"} for i in range(1000)]))
    upload_json(campaign, business_owner, [{"entity_id": f"e{i}", "kpi": "converted", "value": 1}
                                           for i in range(0, 1000, 10)])
    holdout, treated = primary(analyse(campaign))["groups"]
    assert (holdout["n"], holdout["mean"], treated["n"], treated["mean"]) == (200, 0.1, 800, 0.1)


def test_it_aggregates_in_the_database_with_a_fixed_number_of_queries(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35))
    assigned.refresh_from_db()
    with CaptureQueriesContext(connection) as queries:
        analysis.analysis_compute(assigned)
    assert len(queries) <= 6
    assert all("GROUP BY" in q["sql"] for q in queries if "feedback_outcome" in q["sql"])


def test_it_caches_the_result_with_the_data_it_saw(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35))
    assigned.refresh_from_db()
    analyse(assigned)
    assert CampaignAnalysis.objects.get(campaign=assigned).data_version == assigned.data_version


def test_falling_uplift_opens_an_alert_and_recovery_clears_it(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.40, holdout_rate=0.20))
    analyse(assigned)
    alert = Alert.objects.get(model=assigned.model, key=f"uplift:campaign:{assigned.pk}")
    assert (alert.kind, alert.severity, alert.status) == ("uplift", "critical", AlertStatus.OPEN)
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.10, holdout_rate=0.40, seed=9))
    analyse(assigned)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_no_alert_while_data_is_short(assigned, business_owner):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.40, holdout_rate=0.20)[:100])
    analyse(assigned)
    assert not Alert.objects.filter(key=f"uplift:campaign:{assigned.pk}").exists()

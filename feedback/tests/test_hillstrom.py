"""Acceptance: the Hillstrom e-mail campaign (64,000 customers, two e-mails against a no-e-mail holdout)
imported through the API as a bring-your-own-assignment campaign; every rate, uplift interval and p-value
checked against an independent computation with statsmodels and scipy on the raw file."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.test import override_settings
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from conftest import shared_dataset
from registry.tests.fixtures import upload

pytestmark = pytest.mark.django_db
ARMS = ["Mens E-Mail", "Womens E-Mail"]
HOLDOUT = "No E-Mail"


def as_csv(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture
def hillstrom() -> pd.DataFrame:
    frame = pd.read_csv(shared_dataset("hillstrom_email_campaign.csv"))
    frame.insert(0, "entity_id", [f"h{i}" for i in range(len(frame))])
    return frame


@override_settings(FEEDBACK_INLINE_UPLOAD_BYTES=64 * 1024 * 1024)
def test_hillstrom_rates_and_uplift_intervals_match_statsmodels_and_scipy(api_client_for, business_owner,
                                                                          churn_model, hillstrom):
    client = api_client_for(business_owner)
    created = client.post("/api/v1/campaigns/", {
        "name": "Hillstrom e-mail test", "description": "Men's or women's merchandise e-mail, or none.",
        "model": "churn", "arms": ARMS, "holdout_name": HOLDOUT, "holdout_share": 1 / 3,
        "kpis": [{"name": "visit", "is_primary": True}, {"name": "conversion", "value_per_unit": "50"},
                 {"name": "spend", "kind": "numeric"}]}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]

    groups = hillstrom[["entity_id", "segment"]].rename(columns={"segment": "group"})
    assigned = client.post(f"/api/v1/campaigns/{pk}/assignments/",
                           {"mode": "groups", "file": upload(as_csv(groups), "groups.csv")}, format="multipart")
    assert assigned.status_code == 200 and assigned.json()["assigned"] == 64_000

    long = hillstrom.melt(id_vars=["entity_id"], value_vars=["visit", "conversion", "spend"], var_name="kpi")
    landed = client.post(f"/api/v1/campaigns/{pk}/outcomes/", {"file": upload(as_csv(long), "outcomes.csv")},
                         format="multipart")
    assert landed.status_code == 200 and (landed.json()["created"], landed.json()["rows_failed"]) == (192_000, 0)

    result = client.get(f"/api/v1/campaigns/{pk}/analysis/?refresh=1").json()["result"]
    assert not result["srm"]["mismatch"]
    kpis = {k["name"]: k for k in result["kpis"]}
    holdout = hillstrom[hillstrom.segment == HOLDOUT]
    for arm in ARMS:
        treated = hillstrom[hillstrom.segment == arm]
        for name in ("visit", "conversion"):
            check_rate(kpis[name], arm, treated[name], holdout[name])
        check_mean(kpis["spend"], arm, treated["spend"], holdout["spend"])


def _rows(kpi, arm):
    groups = {g["arm"]: g for g in kpi["groups"]}
    comparison = next(c for c in kpi["comparisons"] if c["arm"] == arm)
    return groups[arm], groups[HOLDOUT], comparison


def check_rate(kpi, arm, treated: pd.Series, holdout: pd.Series) -> None:
    group, base, comparison = _rows(kpi, arm)
    assert (group["n"], base["n"]) == (len(treated), len(holdout))
    assert group["mean"] == pytest.approx(treated.mean(), rel=1e-12)
    assert base["mean"] == pytest.approx(holdout.mean(), rel=1e-12)
    low, high = confint_proportions_2indep(treated.sum(), len(treated), holdout.sum(), len(holdout),
                                           method="newcomb", compare="diff")
    assert comparison["diff"] == pytest.approx(treated.mean() - holdout.mean(), rel=1e-9)
    assert (comparison["low"], comparison["high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    _, p_value = proportions_ztest([treated.sum(), holdout.sum()], [len(treated), len(holdout)])
    assert comparison["p_value"] == pytest.approx(p_value, rel=1e-6, abs=1e-300)
    assert comparison["verdict"] == "better"


def check_mean(kpi, arm, treated: pd.Series, holdout: pd.Series) -> None:
    group, base, comparison = _rows(kpi, arm)
    assert group["mean"] == pytest.approx(treated.mean(), rel=1e-9)
    assert base["mean"] == pytest.approx(holdout.mean(), rel=1e-9)
    welch = scipy_stats.ttest_ind(treated, holdout, equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert comparison["diff"] == pytest.approx(treated.mean() - holdout.mean(), rel=1e-9)
    assert (comparison["low"], comparison["high"]) == (pytest.approx(interval.low, rel=1e-6),
                                                       pytest.approx(interval.high, rel=1e-6))
    assert comparison["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)

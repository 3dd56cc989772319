"""Campaign pages: list, create, dashboard with charts, upload progress, sign-offs on the version page, labels."""

from __future__ import annotations

import pytest
from django.test import override_settings

from feedback import analysis, outcomes, services
from feedback.models import Campaign
from feedback.tests.fixtures import churn_outcomes, upload_json
from registry.tests.fixtures import upload

pytestmark = pytest.mark.django_db


def test_the_empty_list_says_what_to_do(client, business_owner):
    client.force_login(business_owner)
    html = client.get("/campaigns/").content.decode()
    assert "No campaigns yet" in html


def test_it_hides_other_teams_campaigns(client, other_data_scientist, campaign):
    client.force_login(other_data_scientist)
    assert client.get(f"/campaigns/{campaign.pk}/").status_code == 404
    assert 'data-testid="campaign-card"' not in client.get("/campaigns/").content.decode()


def test_it_creates_a_campaign_from_the_form(client, business_owner, churn_model):
    client.force_login(business_owner)
    form = {"name": "Winback", "model": "churn", "description": "Call them.", "targeting": "top_n",
            "target_count": 500, "holdout_share": 10, "holdout_name": "holdout", "arms": "call\nemail",
            "kpi-TOTAL_FORMS": 3, "kpi-INITIAL_FORMS": 0, "kpi-0-name": "churned", "kpi-0-kind": "binary",
            "kpi-0-direction": "lower", "kpi-1-kind": "binary", "kpi-1-direction": "higher",
            "kpi-2-kind": "binary", "kpi-2-direction": "higher"}
    response = client.post("/campaigns/new/", form)
    campaign = Campaign.objects.get(name="Winback")
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    assert sorted(campaign.arms.values_list("name", "share")) == [("call", 0.45), ("email", 0.45), ("holdout", 0.1)]


def test_the_dashboard_shows_summary_cards_charts_and_the_method(client, business_owner, assigned):
    upload_json(assigned, business_owner, churn_outcomes(assigned, treated_rate=0.15, holdout_rate=0.35))
    analysis.campaign_analyse(campaign_id=assigned.pk)
    client.force_login(business_owner)
    html = client.get(f"/campaigns/{assigned.pk}/").content.decode()
    assert "treatment lowered 90-day churn by" in html and 'data-testid="hit-rate"' in html
    assert 'data-chart="timeline-figure"' in html and 'data-chart="deciles-figure"' in html
    assert "Newcombe" in html and "Welch" in html


def test_free_text_is_escaped(client, business_owner, assigned):
    services.campaign_comment(campaign=assigned, user=business_owner, body="<script>alert(1)</script>")
    client.force_login(business_owner)
    html = client.get(f"/campaigns/{assigned.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@override_settings(FEEDBACK_INLINE_UPLOAD_BYTES=10)
def test_the_progress_row_polls_until_the_worker_is_done(client, business_owner, assigned):
    data = b"entity_id,kpi,value\nc1,churned,1\n"
    pending = outcomes.outcomes_from_file(campaign=assigned, user=business_owner, upload_file=upload(data, "o.csv"))
    client.force_login(business_owner)
    url = f"/campaigns/{assigned.pk}/uploads/{pending.pk}/progress/"
    polling = client.get(url, HTTP_HX_REQUEST="true")
    assert "hx-trigger" in polling.content.decode() and "HX-Refresh" not in polling
    outcomes.outcome_upload_process(upload_id=pending.pk)
    assert client.get(url, HTTP_HX_REQUEST="true")["HX-Refresh"] == "true"


def test_sign_offs_show_on_the_version_page(client, business_owner, make_campaign, ready_version):
    campaign = make_campaign(version_number=ready_version.number)
    services.campaign_sign_off(campaign=campaign, user=business_owner, decision="accept", reason="Kept 310 customers.")
    client.force_login(business_owner)
    html = client.get(f"/models/churn/versions/{ready_version.number}/").content.decode()
    assert 'data-testid="campaign-sign-offs"' in html and "Kept 310 customers." in html


def test_the_label_page_uploads_a_file(client, data_scientist, churn_model):
    client.force_login(data_scientist)
    response = client.post("/campaigns/labels/churn/", {"file": upload(b"id,label\nc1,Yes\n,No\n", "l.csv")})
    html = response.content.decode()
    assert response.status_code == 200 and "1 new" in html and "Row 2: id: is empty." in html
    assert churn_model.labels.count() == 1

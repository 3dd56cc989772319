"""Campaign and label REST operations: visibility, permissions, per-row errors, exports safe against formulas."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import override_settings

from accounts.models import AuditEvent, Notification
from feedback.api import MSG_CANNOT_LABEL, MSG_CANNOT_RUN
from feedback.models import Label
from feedback.services import MSG_SIGN_OFF_ROLE
from feedback.tests.fixtures import churn_outcomes, scored_list
from registry.tests.fixtures import upload

pytestmark = pytest.mark.django_db

CAMPAIGN = {"name": "Winback", "description": "Call the customer.", "model": "churn", "holdout_share": 0.2,
            "arms": ["call"], "kpis": [{"name": "churned", "direction": "lower", "value_per_unit": "120.00"},
                                       {"name": "spend", "kind": "numeric"}]}


def rows_of(response):
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_it_creates_a_campaign(api_client_for, business_owner, churn_model):
    response = api_client_for(business_owner).post("/api/v1/campaigns/", CAMPAIGN, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [(a["name"], a["is_holdout"], a["share"]) for a in body["arms"]] == [("call", False, 0.8),
                                                                              ("holdout", True, 0.2)]
    assert body["kpis"][0]["is_primary"] and body["business_owner"] == "bo"
    assert AuditEvent.objects.filter(action="campaign.created", target_id=str(body["id"])).exists()


def test_it_refuses_campaigns_on_another_teams_model(api_client_for, other_data_scientist, churn_model):
    response = api_client_for(other_data_scientist).post("/api/v1/campaigns/", CAMPAIGN, format="json")
    assert response.status_code == 404


def test_an_approver_cannot_run_campaigns(api_client_for, approver, churn_model):
    response = api_client_for(approver).post("/api/v1/campaigns/", CAMPAIGN, format="json")
    assert response.status_code == 403 and response.json()["error"]["message"] == MSG_CANNOT_RUN


def test_it_names_the_invalid_fields(api_client_for, business_owner, churn_model):
    response = api_client_for(business_owner).post("/api/v1/campaigns/", {**CAMPAIGN, "kpis": []}, format="json")
    assert response.status_code == 400 and "kpis" in response.json()["error"]["details"]


def test_anonymous_calls_are_refused(api_client_for, campaign):
    assert api_client_for(None).get(f"/api/v1/campaigns/{campaign.pk}/").status_code in (401, 403)


def test_another_team_gets_404_and_an_empty_list(api_client_for, other_data_scientist, campaign):
    client = api_client_for(other_data_scientist)
    assert client.get(f"/api/v1/campaigns/{campaign.pk}/").status_code == 404
    assert client.get(f"/api/v1/campaigns/{campaign.pk}/analysis/").status_code == 404
    assert client.get("/api/v1/campaigns/").json()["count"] == 0


def test_it_assigns_from_json_rows_and_exports_the_treatment_list(api_client_for, business_owner, campaign):
    client = api_client_for(business_owner)
    response = client.post(f"/api/v1/campaigns/{campaign.pk}/assignments/",
                           {"mode": "scores", "rows": scored_list(100)}, format="json")
    assert response.status_code == 200 and response.json()["assigned"] == 100
    exported = rows_of(client.get(f"/api/v1/campaigns/{campaign.pk}/treatment/?export=csv"))
    assert exported[0] == ["entity_id", "arm", "score", "decile", "model_version"]
    treated = set(campaign.assignments.filter(arm__is_holdout=False).values_list("entity_id", flat=True))
    assert {r[0] for r in exported[1:]} == treated and len(treated) == 80


def test_exports_are_safe_against_spreadsheet_formulas(api_client_for, business_owner, make_campaign):
    campaign = make_campaign(arms=["=SUM(A1:A9)"], holdout_share=0.5)
    records = [{"entity_id": "@cmd" if i == 0 else f"e{i}", "group": "=SUM(A1:A9)" if i < 150 else "holdout"}
               for i in range(300)]
    client = api_client_for(business_owner)
    client.post(f"/api/v1/campaigns/{campaign.pk}/assignments/", {"mode": "groups", "rows": records}, format="json")
    treatment = rows_of(client.get(f"/api/v1/campaigns/{campaign.pk}/treatment/?export=csv"))
    assert treatment[1][:2] == ["'@cmd", "'=SUM(A1:A9)"]
    results = rows_of(client.get(f"/api/v1/campaigns/{campaign.pk}/analysis/?export=csv"))
    assert {r[1] for r in results[1:]} == {"'=SUM(A1:A9)", "holdout"}
    assert {r[3] for r in results[1:]} == {"0"}  # numbers stay numbers


def test_it_assigns_groups_from_a_csv_file(api_client_for, business_owner, campaign):
    data = b"entity_id,group\na,holdout\nb,treatment\nc,nope\n"
    response = api_client_for(business_owner).post(f"/api/v1/campaigns/{campaign.pk}/assignments/",
                                                   {"mode": "groups", "file": upload(data, "g.csv")},
                                                   format="multipart")
    assert response.status_code == 200
    assert response.json()["by_arm"] == {"holdout": 1, "treatment": 1} and len(response.json()["errors"]) == 1


def test_outcomes_report_bad_rows_and_keep_the_good(api_client_for, business_owner, assigned):
    body = [{"entity_id": "c1", "kpi": "churned", "value": 1}, {"entity_id": "c2", "kpi": "oops", "value": 1}]
    response = api_client_for(business_owner).post(f"/api/v1/campaigns/{assigned.pk}/outcomes/", body,
                                                   format="json")
    assert response.status_code == 200
    assert (response.json()["created"], response.json()["rows_failed"]) == (1, 1)
    assert response.json()["errors"][0]["row"] == 2


@override_settings(FEEDBACK_INLINE_UPLOAD_BYTES=10)
def test_a_big_outcome_file_is_accepted_for_a_worker(api_client_for, business_owner, assigned):
    client = api_client_for(business_owner)
    data = b"entity_id,kpi,value\nc1,churned,1\nc2,churned,0\n"
    response = client.post(f"/api/v1/campaigns/{assigned.pk}/outcomes/", {"file": upload(data, "o.csv")},
                           format="multipart")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    detail = client.get(f"/api/v1/campaigns/{assigned.pk}/outcomes/uploads/{response.json()['id']}/")
    assert detail.json()["status"] == "queued"


def test_the_analysis_api_gives_intervals_and_exports_safe_csv(api_client_for, business_owner, assigned):
    client = api_client_for(business_owner)
    client.post(f"/api/v1/campaigns/{assigned.pk}/outcomes/",
                churn_outcomes(assigned, treated_rate=0.2, holdout_rate=0.35), format="json")
    body = client.get(f"/api/v1/campaigns/{assigned.pk}/analysis/?refresh=1").json()
    comparison = body["result"]["kpis"][0]["comparisons"][0]
    assert body["up_to_date"] and comparison["low"] < comparison["diff"] < comparison["high"] < 0
    assert body["result"]["srm"]["checked"]


def test_a_business_owner_signs_off_with_a_reason(api_client_for, business_owner, data_scientist, assigned):
    response = api_client_for(business_owner).post(f"/api/v1/campaigns/{assigned.pk}/sign-offs/",
                                                   {"decision": "reject", "reason": "Too few customers kept."})
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="campaign.signed_off", target_id=str(assigned.pk))
    assert event.payload["decision"] == "reject" and event.payload["reason"] == "Too few customers kept."
    assert Notification.objects.filter(user=data_scientist, event="campaign.signed_off").exists()


def test_only_business_owners_sign_off(api_client_for, data_scientist, assigned):
    response = api_client_for(data_scientist).post(f"/api/v1/campaigns/{assigned.pk}/sign-offs/",
                                                   {"decision": "accept", "reason": "fine"})
    assert response.status_code == 403 and response.json()["error"]["message"] == MSG_SIGN_OFF_ROLE


def test_a_retraining_request_reaches_the_data_scientists_inbox(api_client_for, business_owner, data_scientist,
                                                                assigned):
    response = api_client_for(business_owner).post(f"/api/v1/campaigns/{assigned.pk}/retraining-requests/",
                                                   {"reason": "Uplift fell in the top decile."})
    assert response.status_code == 202
    note = Notification.objects.get(user=data_scientist, event="retraining.requested")
    assert note.body == "Uplift fell in the top decile." and note.url == f"/campaigns/{assigned.pk}/"


def test_comments_notify_the_team(api_client_for, business_owner, data_scientist, assigned):
    response = api_client_for(business_owner).post(f"/api/v1/campaigns/{assigned.pk}/comments/",
                                                   {"body": "<b>Nice</b>"})
    assert response.status_code == 201
    assert Notification.objects.filter(user=data_scientist, event="campaign.commented").exists()


# --- labels ------------------------------------------------------------------------------------------


def test_it_upserts_labels_from_json_and_reports_bad_rows(api_client_for, data_scientist, churn_model):
    client = api_client_for(data_scientist)
    body = [{"id": "c1", "label": "Yes"}, {"id": "c2", "label": "No", "observed_at": "2026-01-02"},
            {"id": "", "label": "Yes"}, {"id": "c3"}]
    first = client.post("/api/v1/models/churn/labels/", body, format="json").json()
    again = client.post("/api/v1/models/churn/labels/", body, format="json").json()
    assert (first["created"], first["failed"], [e["row"] for e in first["errors"]]) == (2, 2, [3, 4])
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert Label.objects.get(model=churn_model, entity_id="c1").label == "Yes"


def test_it_takes_labels_as_a_csv_file(api_client_for, data_scientist, churn_model):
    data = b"id,label,observed_at\nc1,Yes,2026-01-01\nc2,No,\n"
    response = api_client_for(data_scientist).post("/api/v1/models/churn/labels/", {"file": upload(data, "l.csv")},
                                                   format="multipart")
    assert response.status_code == 200 and response.json()["created"] == 2


def test_labels_check_the_models_classes(api_client_for, data_scientist, ready_version):
    response = api_client_for(data_scientist).post("/api/v1/models/churn/labels/", [{"id": "c1", "label": "maybe"}],
                                                   format="json")
    assert response.json()["errors"][0]["error"] == "label: 'maybe' is not one of the model's classes (No, Yes)."


def test_other_teams_cannot_label_a_model(api_client_for, other_data_scientist, business_owner, churn_model):
    body = [{"id": "c1", "label": "Yes"}]
    assert api_client_for(other_data_scientist).post("/api/v1/models/churn/labels/", body,
                                                     format="json").status_code == 404
    refused = api_client_for(business_owner).post("/api/v1/models/churn/labels/", body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["message"] == MSG_CANNOT_LABEL


@override_settings(FEEDBACK_MAX_JSON_ROWS=2)
def test_labels_in_one_request_are_bounded(api_client_for, data_scientist, churn_model):
    body = [{"id": f"c{i}", "label": "Yes"} for i in range(3)]
    assert api_client_for(data_scientist).post("/api/v1/models/churn/labels/", body,
                                               format="json").status_code == 413

"""Governance over REST: the role-by-action matrix and the documented error bodies."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from registry import promotions
from registry.models import PromotionRequest

pytestmark = pytest.mark.django_db
ALL = ["data_scientist", "business_owner", "approver", "outsider", "admin_user"]


@pytest.fixture
def request_open(ready_version, data_scientist) -> PromotionRequest:
    return promotions.promotion_open(version=ready_version, user=data_scientist, target="staging", justification="x")


# action → personas allowed (status when allowed); everyone else gets 403 (or 404 where they cannot see the model)
MATRIX = {
    "open": ({"data_scientist", "admin_user"}, 201),
    "approve": ({"approver", "admin_user"}, 200),
    "reject": ({"approver", "admin_user"}, 200),
    "comment": ({"data_scientist", "business_owner", "approver", "admin_user"}, 201),
    "override": ({"admin_user"}, 400),  # allowed, but no gate was evaluated yet: nothing to override
    "rollback": ({"approver", "admin_user"}, 409),  # allowed, but nothing in production yet
    "policy_put": ({"admin_user"}, 200),
}


def call(client, action: str, request: PromotionRequest):
    pk = request.pk
    return {
        "open": lambda: client.post("/api/v1/models/churn/versions/1/promotions/",
                                    {"target": "production", "justification": "Ready."}, format="json"),
        "approve": lambda: client.post(f"/api/v1/promotions/{pk}/approve/", {"comment": "ok"}, format="json"),
        "reject": lambda: client.post(f"/api/v1/promotions/{pk}/reject/", {"comment": "no"}, format="json"),
        "comment": lambda: client.post(f"/api/v1/promotions/{pk}/comments/", {"body": "Looks good"}, format="json"),
        "override": lambda: client.post(f"/api/v1/promotions/{pk}/overrides/",
                                        {"gate": "model_card_complete", "reason": "ok"}, format="json"),
        "rollback": lambda: client.post("/api/v1/models/churn/rollback/", {"reason": "bad"}, format="json"),
        "policy_put": lambda: client.put("/api/v1/models/churn/policy/", {"allow_author_approval": True},
                                         format="json"),
    }[action]()


@pytest.mark.parametrize("persona", ALL, indirect=True)
def test_each_role_can_do_only_what_the_policy_and_its_role_allow(request_open, persona, api_client_for):
    client = api_client_for(persona)
    for action, (allowed, status_when_allowed) in MATRIX.items():
        name = next(k for k in ALL if persona.username == {"data_scientist": "dana", "business_owner": "bo",
                                                           "approver": "april", "outsider": "otto",
                                                           "admin_user": "root"}[k])
        response = call(client, action, PromotionRequest.objects.get(pk=request_open.pk))
        expected = status_when_allowed if name in allowed else 403
        assert response.status_code == expected, (action, name, response.json())
        if response.status_code >= 400:
            assert response.json()["error"]["code"]
        if action in ("approve", "reject") and name in allowed:
            PromotionRequest.objects.filter(pk=request_open.pk).update(status="open")
            PromotionRequest.objects.get(pk=request_open.pk).approvals.all().delete()


def test_it_hides_requests_on_other_teams_models(request_open, other_data_scientist, api_client_for):
    client = api_client_for(other_data_scientist)
    assert client.get(f"/api/v1/promotions/{request_open.pk}/").status_code == 404
    assert client.get("/api/v1/promotions/").json()["count"] == 0


def test_it_lists_what_waits_for_me(request_open, approver, data_scientist, api_client_for):
    waiting = api_client_for(approver).get("/api/v1/promotions/?awaiting=me").json()
    assert [r["id"] for r in waiting["results"]] == [request_open.pk]
    assert api_client_for(data_scientist).get("/api/v1/promotions/?awaiting=me").json()["count"] == 0


def test_it_refuses_a_rejection_without_a_reason(request_open, approver, api_client_for):
    response = api_client_for(approver).post(f"/api/v1/promotions/{request_open.pk}/reject/", {}, format="json")
    assert response.status_code == 400
    assert "comment" in response.json()["error"]["details"]


def test_it_refuses_an_unknown_gate_in_a_policy(ready_version, admin_user, api_client_for):
    response = api_client_for(admin_user).put("/api/v1/models/churn/policy/", {"gates": {"vibes": True}},
                                              format="json")
    assert response.status_code == 400
    assert "gates" in response.json()["error"]["details"]


def test_it_audits_every_governance_action_once(request_open, approver, api_client_for):
    api_client_for(approver).post(f"/api/v1/promotions/{request_open.pk}/comments/", {"body": "?"}, format="json")
    api_client_for(approver).post(f"/api/v1/promotions/{request_open.pk}/reject/", {"comment": "no"}, format="json")
    actions = list(AuditEvent.objects.filter(target_id=str(request_open.pk), target_type="registry.promotionrequest")
                   .values_list("action", flat=True).order_by("id"))
    assert actions == ["promotion.opened", "promotion.commented", "promotion.rejected"]

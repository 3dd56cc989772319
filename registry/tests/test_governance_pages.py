"""Governance pages: approvals inbox, the request page and its actions, promote, history, rollback,
policies and delivery metrics."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django.utils.html import escape

from opsportal.roles import Role
from registry import delivery, promotions, selectors
from registry.models import ApprovalPolicy, ModelVersion, PromotionRequest, RegisteredModel

pytestmark = pytest.mark.django_db


CARD = {"description": "Logistic regression.", "intended_use": "Retention e-mails."}


def marked_ready(version):
    """Skip the sandbox validation (seconds per version): these pages only read the status."""
    ModelVersion.objects.filter(pk=version.pk).update(status="ready")
    version.refresh_from_db()
    return version


@pytest.fixture
def candidate(register):
    return marked_ready(register(**CARD))


@pytest.fixture
def second(register, candidate):
    return marked_ready(register(**CARD))


@pytest.fixture
def validated(register, validate):
    """Really validated, for the tests that run the real gate evaluation in the sandbox."""
    version = validate(register(**CARD))
    assert version.status == "ready", version.status_reason
    return version


def login(client, user):
    client.force_login(user)
    return client


def open_request(version, user, target="production"):
    return promotions.promotion_open(version=version, user=user, target=target, justification="Better recall.")


def measured(promotion, gate_results=None):
    """Store a measurement as the gate worker would, without the sandbox (it takes seconds)."""
    champion = selectors.production_version(promotion.version.model)
    results = {"candidate": {"metrics": {"roc_auc": 0.8}}}
    if champion:
        results["champion"] = {"metrics": {"roc_auc": 0.8}}
    PromotionRequest.objects.filter(pk=promotion.pk).update(
        evaluation={"outcome": "evaluated", "rows": 600, "data": "test rows", "results": results},
        gates_evaluated_at=timezone.now(), champion_at_evaluation=champion, gates_status="passed",
        gate_results=gate_results or [],
    )
    promotion.refresh_from_db()
    return promotion


def promote(version, requester, approver):
    promotion = measured(open_request(version, requester))
    return promotions.promotion_decide(request=promotion, user=approver, decision="approve")


def evaluated(version, requester):
    promotion = open_request(version, requester)
    promotions.promotion_gates_evaluate(request_id=promotion.pk)
    promotion.refresh_from_db()
    return promotion


POLICY_FORM = {
    "staging_approver": "1", "staging_business_owner": "0", "production_approver": "2",
    "production_business_owner": "1", "beats_champion": "on", "beats_champion_tolerance": "0.01",
    "signature_compatible": "on", "no_critical_alerts": "on", "fairness_metric": "positive_rate",
    "model_card_complete": ["description", "limitations"],
    "thresholds-TOTAL_FORMS": "2", "thresholds-INITIAL_FORMS": "0", "thresholds-MIN_NUM_FORMS": "0",
    "thresholds-MAX_NUM_FORMS": "30", "thresholds-0-metric": "roc_auc", "thresholds-0-min": "0.7",
}


# --- the approvals inbox ----------------------------------------------------------------------------


def test_it_shows_a_waiting_request_to_an_approver(client, candidate, data_scientist, approver):
    promotion = open_request(candidate, data_scientist)
    html = login(client, approver).get("/approvals/").content.decode()
    assert f'data-testid="waiting-{promotion.pk}"' in html


def test_it_keeps_the_requesters_own_request_out_of_waiting_for_you(client, candidate, data_scientist):
    promotion = open_request(candidate, data_scientist)
    html = login(client, data_scientist).get("/approvals/").content.decode()
    assert f'data-testid="waiting-{promotion.pk}"' not in html
    assert f'data-testid="mine-{promotion.pk}"' in html


def test_it_lists_a_rejected_request_as_recently_decided(client, candidate, data_scientist, approver):
    promotion = open_request(candidate, data_scientist)
    promotions.promotion_decide(request=promotion, user=approver, decision="reject", comment="Not yet.")
    html = login(client, data_scientist).get("/approvals/").content.decode()
    assert f'data-testid="decided-{promotion.pk}"' in html


def test_it_tells_what_to_do_when_nothing_waits(client, approver):
    assert b"Nothing is waiting for you" in login(client, approver).get("/approvals/").content


# --- the request page ---------------------------------------------------------------------------------


def test_it_shows_the_gate_results_and_the_approve_button(client, validated, data_scientist, approver):
    promotion = evaluated(validated, data_scientist)
    html = login(client, approver).get(f"/approvals/{promotion.pk}/").content.decode()
    assert 'data-testid="gate-results"' in html and "Validation passed" in html
    assert 'data-testid="approve"' in html


def test_it_polls_while_the_gates_are_evaluated(client, candidate, data_scientist):
    promotion = open_request(candidate, data_scientist)
    html = login(client, data_scientist).get(f"/approvals/{promotion.pk}/").content.decode()
    assert 'data-testid="gates-evaluating"' in html and 'hx-trigger="every 3s"' in html


def test_it_tells_htmx_to_reload_once_the_gates_are_evaluated(client, candidate, data_scientist):
    promotion = measured(open_request(candidate, data_scientist))
    response = login(client, data_scientist).get(f"/approvals/{promotion.pk}/", HTTP_HX_REQUEST="true")
    assert response["HX-Refresh"] == "true"


def test_it_promotes_when_approved_through_the_page(client, validated, data_scientist, approver):
    promotion = evaluated(validated, data_scientist)
    login(client, approver).post(f"/approvals/{promotion.pk}/decide/", {"decision": "approve"})
    validated.refresh_from_db()
    assert validated.stage == "production"
    assert b'data-testid="alias-champion"' in client.get("/models/churn/").content


def test_it_shows_the_four_eyes_refusal(client, candidate, make_user):
    both = make_user("deb", Role.DATA_SCIENTIST, Role.APPROVER, team="data-science")
    promotion = open_request(candidate, both)
    response = login(client, both).post(f"/approvals/{promotion.pk}/decide/", {"decision": "approve"}, follow=True)
    assert escape(promotions.MSG_OWN_REQUEST) in response.content.decode()


def test_it_tells_the_requester_upfront_that_someone_else_decides(client, candidate, make_user):
    both = make_user("deb", Role.DATA_SCIENTIST, Role.APPROVER, team="data-science")
    promotion = open_request(candidate, both)
    html = login(client, both).get(f"/approvals/{promotion.pk}/").content.decode()
    assert 'data-testid="four-eyes"' in html and 'data-testid="approve"' not in html


def test_it_asks_for_a_reason_to_reject(client, candidate, data_scientist, approver):
    promotion = open_request(candidate, data_scientist)
    response = login(client, approver).post(f"/approvals/{promotion.pk}/decide/", {"decision": "reject"}, follow=True)
    assert promotions.MSG_REASON_REQUIRED in response.content.decode()
    assert PromotionRequest.objects.get(pk=promotion.pk).status == "open"


def test_it_lets_a_business_owner_comment_and_escapes_it(client, candidate, data_scientist, business_owner):
    promotion = open_request(candidate, data_scientist)
    url = f"/approvals/{promotion.pk}/comment/"
    html = login(client, business_owner).post(url, {"body": "<b>worth it</b>"}, follow=True).content.decode()
    assert "&lt;b&gt;worth it&lt;/b&gt;" in html and "<b>worth it</b>" not in html


def test_it_lets_an_admin_override_a_failing_gate(client, candidate, data_scientist, admin_user):
    failing = {"gate": "no_critical_alerts", "label": "No open critical alert on the model", "passed": False,
               "detail": "Open critical alerts: drift.", "measured": 1, "threshold": 0}
    promotion = measured(open_request(candidate, data_scientist), gate_results=[failing])
    login(client, admin_user).post(f"/approvals/{promotion.pk}/override/",
                                   {"gate": "no_critical_alerts", "reason": "Alert is a known false positive."})
    html = client.get("/models/churn/versions/1/").content.decode()
    assert 'data-testid="gate-overrides"' in html and "Alert is a known false positive." in html


def test_it_lets_the_requester_withdraw(client, candidate, data_scientist):
    promotion = open_request(candidate, data_scientist)
    login(client, data_scientist).post(f"/approvals/{promotion.pk}/withdraw/")
    assert PromotionRequest.objects.get(pk=promotion.pk).status == "withdrawn"


# --- promote ------------------------------------------------------------------------------------------


def test_it_opens_a_request_and_redirects_to_it(client, candidate, data_scientist):
    response = login(client, data_scientist).post("/models/churn/versions/1/promote/",
                                                  {"target": "staging", "justification": "First one."})
    promotion = PromotionRequest.objects.get()
    assert response["Location"] == f"/approvals/{promotion.pk}/"


def test_it_refuses_to_promote_a_failed_version_with_the_message(client, register, data_scientist):
    version = register()
    ModelVersion.objects.filter(pk=version.pk).update(status="failed")
    response = login(client, data_scientist).post("/models/churn/versions/1/promote/",
                                                  {"target": "production", "justification": "Please."}, follow=True)
    assert escape(promotions.MSG_NOT_READY.format(number=1, status="failed")) in response.content.decode()
    assert not PromotionRequest.objects.exists()


def test_it_hides_the_promote_form_from_business_owners(client, candidate, business_owner):
    html = login(client, business_owner).get("/models/churn/versions/1/").content.decode()
    assert 'data-testid="promote-form"' not in html


# --- history and rollback -----------------------------------------------------------------------------


def test_it_lists_production_intervals(client, candidate, data_scientist, approver):
    promote(candidate, data_scientist, approver)
    html = login(client, approver).get("/models/churn/history/").content.decode()
    assert 'data-testid="history"' in html and "april" in html and ">now<" in html


def test_it_highlights_the_version_in_production_at_a_moment(client, candidate, data_scientist, approver):
    promote(candidate, data_scientist, approver)
    at = timezone.localtime(timezone.now() + timezone.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    html = login(client, approver).get(f"/models/churn/history/?at={at}").content.decode()
    assert 'data-testid="highlighted"' in html


def test_it_rolls_back_to_the_previous_version(client, candidate, second, data_scientist, approver):
    promote(candidate, data_scientist, approver)
    promote(second, data_scientist, approver)
    login(client, approver).post("/models/churn/rollback/", {"reason": "Conversions dropped."})
    assert selectors.production_version(candidate.model).number == 1


def test_it_refuses_rollback_to_a_data_scientist(client, churn_model, data_scientist):
    assert login(client, data_scientist).post("/models/churn/rollback/", {"reason": "x"}).status_code == 403


# --- policies -----------------------------------------------------------------------------------------


def test_it_shows_the_policy_to_a_business_owner_without_a_form(client, churn_model, business_owner):
    html = login(client, business_owner).get("/models/churn/policy/").content.decode()
    assert 'data-testid="policy-summary"' in html and 'data-testid="policy-form"' not in html


def test_it_refuses_a_policy_change_from_a_non_admin(client, churn_model, approver):
    assert login(client, approver).post("/models/churn/policy/", POLICY_FORM).status_code == 403


def test_it_lets_an_admin_change_a_models_policy(client, churn_model, admin_user):
    login(client, admin_user).post("/models/churn/policy/", POLICY_FORM)
    policy = ApprovalPolicy.objects.get(model=churn_model)
    assert policy.required_approvals["production"] == {"approver": 2, "business_owner": 1}
    assert policy.gates["metric_thresholds"] == {"roc_auc": {"min": 0.7}}


def test_it_lets_an_admin_change_the_default_policy(client, admin_user):
    login(client, admin_user).post("/models/policy/", {**POLICY_FORM, "auto_promote": "on"})
    assert ApprovalPolicy.objects.get(model=None).auto_promote is True


# --- delivery metrics ---------------------------------------------------------------------------------


def test_it_shows_delivery_metrics_only_to_admins(client, approver):
    assert login(client, approver).get("/models/delivery/").status_code == 403


def test_it_says_when_there_is_not_enough_delivery_data(client, churn_model, admin_user):
    assert b"Not enough data yet" in login(client, admin_user).get("/models/delivery/").content


def test_it_shows_delivery_figures_after_one_promotion(client, candidate, data_scientist, approver, admin_user):
    promote(candidate, data_scientist, approver)
    html = login(client, admin_user).get("/models/delivery/").content.decode()
    assert "100%" in html and "(1 of 1)" in html and "per 30 days" in html


def test_it_counts_a_rolled_back_promotion_as_a_change_failure(candidate, second, data_scientist, approver):
    promote(candidate, data_scientist, approver)
    promote(second, data_scientist, approver)
    promotions.model_rollback(model=candidate.model, user=approver, reason="Broken.")
    overall = delivery.delivery_metrics(RegisteredModel.objects.all())["overall"]
    assert overall["change_failure_rate"] == 0.5

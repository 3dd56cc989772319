"""Promotion governance: gates, four eyes, policies, race-free decisions, rollback and history."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from django.db import connection

from accounts.models import AuditEvent
from monitoring.models import Alert
from opsportal.roles import Role
from registry import gates, promotions, selectors
from registry.models import ApprovalPolicy, ModelVersion, PromotionRequest, StageTransition
from registry.tests.fixtures import churn_frame, churn_pipeline

pytestmark = pytest.mark.django_db
CARD = {"description": "Logistic regression on tenure and contract.", "intended_use": "Retention emails."}


def open_request(version, user, target="production"):
    request = promotions.promotion_open(version=version, user=user, target=target, justification="Better AUC.")
    promotions.promotion_gates_evaluate(request_id=request.pk)  # what the worker runs
    request.refresh_from_db()
    return request


def set_policy(**changes):
    policy = ApprovalPolicy.objects.get(model=None)
    for key, value in changes.items():
        setattr(policy, key, value)
    policy.save()


def gate(request, name):
    return next(r for r in request.gate_results if r["gate"] == name)


@pytest.fixture
def candidate(register, validate):
    version = validate(register(intended_use=CARD["intended_use"], description=CARD["description"]))
    assert version.status == "ready", version.status_reason
    return version


@pytest.fixture
def champion(candidate, data_scientist, approver):
    promotions.promotion_decide(request=open_request(candidate, data_scientist), user=approver, decision="approve")
    candidate.refresh_from_db()
    assert candidate.stage == "production"
    return candidate


def test_it_promotes_after_one_approval_when_every_gate_passes(candidate, data_scientist, approver):
    request = open_request(candidate, data_scientist)
    assert request.gates_status == "passed", request.gate_results
    decided = promotions.promotion_decide(request=request, user=approver, decision="approve", comment="ok")
    assert decided.status == "approved"
    assert selectors.production_version(candidate.model) == candidate
    assert candidate.model.aliases.get(name="champion").version == candidate
    assert AuditEvent.objects.filter(action="model.promoted", target_id=str(candidate.pk)).count() == 1


def test_it_refuses_to_submit_a_version_that_failed_validation(register, validate, data_scientist):
    failed = validate(register(reference=churn_frame().drop(columns=["Contract"])))
    with pytest.raises(promotions.GovernanceError, match="only a validated version"):
        promotions.promotion_open(version=failed, user=data_scientist, target="production", justification="x")


@pytest.mark.parametrize("persona", ["data_scientist", "business_owner"], indirect=True)
def test_it_refuses_decisions_from_roles_the_policy_does_not_name(candidate, data_scientist, persona):
    request = open_request(candidate, data_scientist)
    with pytest.raises(promotions.GovernanceError) as refused:
        promotions.promotion_decide(request=request, user=persona, decision="approve")
    assert refused.value.status == 403


def test_it_refuses_an_approver_deciding_their_own_request(candidate, make_user):
    both = make_user("sam", Role.DATA_SCIENTIST, Role.APPROVER, team="data-science")
    request = open_request(candidate, both)
    with pytest.raises(promotions.GovernanceError, match="four eyes") as refused:
        promotions.promotion_decide(request=request, user=both, decision="approve")
    assert refused.value.status == 403


def test_it_refuses_the_versions_author_even_when_someone_else_requested(candidate, data_scientist, make_user):
    data_scientist.groups.add(*__import__("django.contrib.auth.models", fromlist=["Group"]).Group.objects.filter(
        name="approver"))
    colleague = make_user("kim", Role.DATA_SCIENTIST, team="data-science")
    request = open_request(candidate, colleague)
    with pytest.raises(promotions.GovernanceError, match="registered this version"):
        promotions.promotion_decide(request=request, user=data_scientist, decision="approve")


def test_it_needs_both_roles_when_the_policy_names_two(candidate, data_scientist, approver, business_owner):
    set_policy(required_approvals={"production": {"approver": 1, "business_owner": 1}})
    request = open_request(candidate, data_scientist)
    after_one = promotions.promotion_decide(request=request, user=approver, decision="approve")
    assert after_one.status == "open"
    assert promotions.approvals_missing(after_one, selectors.policy_for(candidate.model)) == {"business_owner": 1}
    after_two = promotions.promotion_decide(request=request, user=business_owner, decision="approve")
    assert after_two.status == "approved"


def test_it_decides_a_request_once(candidate, data_scientist, approver, make_user):
    request = open_request(candidate, data_scientist)
    promotions.promotion_decide(request=request, user=approver, decision="reject", comment="Not this quarter.")
    second = make_user("ari", Role.APPROVER)
    with pytest.raises(promotions.GovernanceError, match="already decided") as refused:
        promotions.promotion_decide(request=request, user=second, decision="approve")
    assert refused.value.status == 409
    assert selectors.production_version(candidate.model) is None


def test_it_requires_a_reason_to_reject(candidate, data_scientist, approver):
    with pytest.raises(promotions.GovernanceError, match="reason"):
        promotions.promotion_decide(request=open_request(candidate, data_scientist), user=approver, decision="reject")


# --- each gate, passing and failing for a real reason ----------------------------------------------


def test_metric_threshold_gate_fails_below_and_passes_above(candidate, data_scientist):
    set_policy(gates={"metric_thresholds": {"roc_auc": {"min": 0.99}}})
    failing = gate(open_request(candidate, data_scientist), "metric_thresholds")
    assert not failing["passed"] and "roc_auc" in failing["detail"]
    measured = failing["measured"]["roc_auc"]
    assert 0.6 < measured < 0.99
    set_policy(gates={"metric_thresholds": {"roc_auc": {"min": round(measured - 0.05, 3)}}})
    assert gate(open_request(candidate, data_scientist, "staging"), "metric_thresholds")["passed"]


def test_beats_champion_gate_scores_both_models_on_the_same_rows(champion, register, validate, data_scientist):
    frame = churn_frame()
    shuffled = frame.assign(Churn=np.random.default_rng(1).permutation(frame["Churn"].to_numpy()))
    worse = validate(register(churn_pipeline(shuffled), **CARD))
    result = gate(open_request(worse, data_scientist), "beats_champion")
    assert not result["passed"]
    assert result["measured"]["candidate"] < result["measured"]["champion"]
    better_or_equal = validate(register(churn_pipeline(churn_frame(seed=7)), parent_number=1, **CARD, limitations="x"))
    assert gate(open_request(better_or_equal, data_scientist), "beats_champion")["passed"]


def test_signature_gate_flags_a_removed_column_as_breaking(champion, register, validate, data_scientist):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = churn_frame().drop(columns=["tenure", "MonthlyCharges", "SeniorCitizen"])
    narrow = Pipeline([("f", ColumnTransformer([("c", OneHotEncoder(), ["Contract", "PaymentMethod"])])),
                       ("m", LogisticRegression())]).fit(frame.drop(columns="Churn"), frame["Churn"])
    version = validate(register(narrow, reference=frame, **CARD))
    result = gate(open_request(version, data_scientist), "signature_compatible")
    assert not result["passed"]
    assert "tenure removed" in result["detail"]


def test_critical_alert_gate_blocks_until_the_alert_resolves(candidate, data_scientist):
    alert = Alert.objects.create(model=candidate.model, severity="critical", title="Drift on tenure")
    assert not gate(open_request(candidate, data_scientist), "no_critical_alerts")["passed"]
    alert.status = "resolved"
    alert.save()
    assert gate(open_request(candidate, data_scientist, "staging"), "no_critical_alerts")["passed"]


def test_fairness_gate_compares_groups_on_the_evaluation_rows(candidate, data_scientist):
    set_policy(gates={"fairness": {"column": "SeniorCitizen", "metric": "positive_rate", "max_gap": 0.0001}})
    failing = gate(open_request(candidate, data_scientist), "fairness")
    assert not failing["passed"] and failing["measured"]["gap"] > 0.0001
    set_policy(gates={"fairness": {"column": "SeniorCitizen", "metric": "positive_rate", "max_gap": 1.0}})
    assert gate(open_request(candidate, data_scientist, "staging"), "fairness")["passed"]


def test_model_card_gate_names_missing_fields(register, validate, data_scientist):
    version = validate(register(description="Only a description."))
    result = gate(open_request(version, data_scientist), "model_card_complete")
    assert not result["passed"]
    assert result["measured"] == ["intended_use"]


def test_validation_gate_reads_the_version_status(candidate):
    policy = ApprovalPolicy.objects.get(model=None)
    assert gates.validation_passed(candidate, {}, {}, None)["passed"]
    candidate.status = "failed"
    assert not gates.evaluate(candidate, policy, {}, None)[0]["passed"]


def test_an_admin_override_with_a_reason_lets_a_failing_gate_pass(register, validate, data_scientist, approver,
                                                                  admin_user):
    version = validate(register(description="Only a description."))
    request = open_request(version, data_scientist)
    assert promotions.promotion_decide(request=request, user=approver, decision="approve").status == "open"
    with pytest.raises(promotions.GovernanceError, match="reason"):
        promotions.gate_override(request=request, admin=admin_user, gate="model_card_complete", reason=" ")
    promotions.gate_override(request=request, admin=admin_user, gate="model_card_complete",
                             reason="Card written in the wiki; copied next sprint.")
    request.refresh_from_db()
    assert request.status == "approved"
    assert version.gate_overrides.get().reason.startswith("Card written")
    assert AuditEvent.objects.filter(action="promotion.gate_overridden", actor=admin_user).count() == 1


# --- stages, rollback, history ------------------------------------------------------------------------


def test_it_archives_the_previous_champion_and_rolls_back_to_it(champion, register, validate, data_scientist,
                                                                 approver):
    second = validate(register(churn_pipeline(churn_frame(seed=7)), **CARD, limitations="none known"))
    promotions.promotion_decide(request=open_request(second, data_scientist), user=approver, decision="approve")
    champion.refresh_from_db()
    assert (champion.stage, ModelVersion.objects.get(pk=second.pk).stage) == ("archived", "production")
    restored = promotions.model_rollback(model=champion.model, user=approver, reason="Complaints from the CRM team")
    assert restored == champion
    assert ModelVersion.objects.get(pk=second.pk).stage == "archived"
    assert champion.model.aliases.get(name="champion").version == champion
    history = selectors.production_history(champion.model)
    assert [(h["version"], h["kind"]) for h in history] == [(1, "rollback"), (2, "promotion"), (1, "promotion")]
    assert history[1]["approved_by"] == ["april"]
    assert selectors.in_production_at(champion.model, history[1]["since"])["version"] == 2


def test_it_supersedes_older_open_requests_for_the_same_target(candidate, register, validate, data_scientist):
    first = promotions.promotion_open(version=candidate, user=data_scientist, target="production", justification="a")
    second_version = validate(register(churn_pipeline(churn_frame(seed=5))))
    promotions.promotion_open(version=second_version, user=data_scientist, target="production", justification="b")
    first.refresh_from_db()
    assert first.status == "superseded"


def test_it_re_measures_when_the_champion_changed_since_the_gates_ran(champion, register, validate, data_scientist,
                                                                      approver, django_capture_on_commit_callbacks):
    set_policy(gates={})  # only "validation passed": the point here is the champion changing
    first = validate(register(churn_pipeline(churn_frame(seed=21)), **CARD))
    second = validate(register(churn_pipeline(churn_frame(seed=22)), **CARD))
    staging = open_request(first, data_scientist, "staging")
    promotions.promotion_decide(request=open_request(second, data_scientist), user=approver, decision="approve")
    with django_capture_on_commit_callbacks() as queued:
        still_open = promotions.promotion_decide(request=staging, user=approver, decision="approve")
    assert still_open.status == "open" and still_open.gates_status == "evaluating"
    assert queued  # a new measurement against the new champion
    promotions.promotion_gates_evaluate(request_id=staging.pk)
    staging.refresh_from_db()
    assert staging.champion_at_evaluation_id == second.pk


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_approvers_at_once_give_one_decision(candidate, data_scientist, approver, make_user):
    other = make_user("ari", Role.APPROVER)
    request = open_request(candidate, data_scientist)
    barrier, outcomes = threading.Barrier(2), []

    def decide(user):
        try:
            barrier.wait()
            outcomes.append(promotions.promotion_decide(request=request, user=user, decision="approve").status)
        except promotions.GovernanceError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()  # each thread has its own real database connection

    threads = [threading.Thread(target=decide, args=(u,)) for u in (approver, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_decided", "approved"]
    assert PromotionRequest.objects.get(pk=request.pk).approvals.count() == 1
    assert StageTransition.objects.filter(to_stage="production").count() == 1


def test_it_auto_approves_only_where_the_models_own_policy_allows_it(candidate, data_scientist):
    set_policy(auto_promote=True)  # the default policy's switch never counts
    request = open_request(candidate, data_scientist)
    with pytest.raises(promotions.GovernanceError) as refused:
        promotions.promotion_auto_approve(request=request, reason="retrained", payload={})
    assert refused.value.status == 403
    ApprovalPolicy.objects.create(model=candidate.model, auto_promote=True)
    assert promotions.promotion_auto_approve(request=request, reason="retrained", payload={"run": 1})
    candidate.refresh_from_db()
    assert candidate.stage == "production"
    assert AuditEvent.objects.filter(action="model.promoted", payload__automatic=True).exists()

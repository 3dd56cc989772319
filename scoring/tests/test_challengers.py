"""Challengers in real traffic: canary rows sticky per entity, shadow scored off the response path."""

from __future__ import annotations

import numpy as np
import pytest

from accounts.models import AuditEvent
from registry import promotions
from registry.models import ApprovalPolicy
from registry.tests.fixtures import CATEGORICAL, NUMERIC, churn_frame, churn_pipeline
from scoring import log, services
from scoring.models import PredictionLog

pytestmark = pytest.mark.django_db
ROWS = churn_frame(rows=200, seed=5)[NUMERIC + CATEGORICAL]
IDS = [f"cust-{i}" for i in range(200)]


def promote(version, requester, approver, target):
    request = promotions.promotion_open(version=version, user=requester, target=target, justification="ok")
    promotions.promotion_gates_evaluate(request_id=request.pk)
    promotions.promotion_decide(request=request, user=approver, decision="approve")


@pytest.fixture
def champion_and_challenger(ready_version, register, validate, data_scientist, approver):
    log.discard()
    ApprovalPolicy.objects.filter(model=None).update(gates={})
    promote(ready_version, data_scientist, approver, "production")
    challenger = validate(register(churn_pipeline(churn_frame(seed=31))))
    promote(challenger, data_scientist, approver, "staging")
    return ready_version, challenger


def score(client):
    return client.post("/api/v1/models/churn/predict", {"rows": ROWS.to_dict("records"), "ids": IDS},
                       format="json").json()


def configure(client, mode, percent=0):
    return client.put("/api/v1/models/churn/scoring-config/", {"challenger_mode": mode, "canary_percent": percent},
                      format="json")


def test_canary_sends_a_sticky_share_of_entities_to_the_challenger(champion_and_challenger, api_client_for,
                                                                    approver, data_scientist):
    assert configure(api_client_for(approver), "canary", 30).status_code == 200
    client = api_client_for(data_scientist)
    first, again = score(client), score(client)
    versions = np.array(first["versions"])
    assert first["versions"] == again["versions"]  # sticky
    assert 0.2 < (versions == 2).mean() < 0.4
    canary_rows = ROWS[versions == 2]
    expected = churn_pipeline(churn_frame(seed=31)).predict_proba(canary_rows)[:, 1]
    got = [p["Yes"] for p, v in zip(first["probabilities"], first["versions"], strict=True) if v == 2]
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(("percent", "expected"), [(0, {1}), (100, {2})])
def test_canary_at_the_extremes(champion_and_challenger, api_client_for, approver, data_scientist, percent, expected):
    configure(api_client_for(approver), "canary", percent)
    body = score(api_client_for(data_scientist))
    assert set(body.get("versions", [body["version"]] * len(IDS))) == expected


def test_only_approvers_route_traffic_and_it_is_audited(champion_and_challenger, api_client_for, business_owner,
                                                        approver):
    assert configure(api_client_for(business_owner), "canary", 50).status_code == 403
    configure(api_client_for(approver), "shadow")
    assert AuditEvent.objects.filter(action="scoring.challenger_mode_set", actor=approver).count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_shadow_scores_and_logs_the_challenger_but_returns_the_champion(champion_and_challenger, api_client_for,
                                                                        approver, data_scientist):
    champion, challenger = champion_and_challenger
    configure(api_client_for(approver), "shadow")
    body = score(api_client_for(data_scientist))
    assert body["version"] == 1 and "versions" not in body
    services._shadow_pool.submit(lambda: None).result(timeout=30)  # the shadow job ahead of it is done
    log.flush()
    sources = dict(PredictionLog.objects.values_list("source", "version").distinct())
    assert sources == {"realtime": champion.pk, "shadow": challenger.pk}
    assert PredictionLog.objects.filter(source="shadow").count() == len(IDS)

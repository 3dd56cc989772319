"""Campaign fixtures for feedback tests: a churn model, a campaign on it, audiences and outcomes built in code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from feedback import outcomes, services
from feedback.models import Campaign
from feedback.services import CampaignSpec, KpiSpec


def rows(records: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return list(enumerate(records, start=1))


def scored_list(n: int = 2000, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"entity_id": f"c{i}", "score": float(s)} for i, s in enumerate(rng.random(n))]


@pytest.fixture
def make_campaign(churn_model: Any, business_owner: Any) -> Callable[..., Campaign]:
    def make(**fields: Any) -> Campaign:
        spec = CampaignSpec(**{
            "name": "Retention email", "description": "A 10% discount email to likely churners.",
            "kpis": [KpiSpec("churned", label="90-day churn", direction="lower", value_per_unit=150),
                     KpiSpec("spend", kind="numeric")],
            "holdout_share": 0.2, "seed": "s33d", "business_owner": business_owner, **fields})
        return services.campaign_create(user=business_owner, model=churn_model, spec=spec)

    return make


@pytest.fixture
def campaign(make_campaign: Callable[..., Campaign]) -> Campaign:
    return make_campaign()


@pytest.fixture
def assigned(campaign: Campaign, business_owner: Any) -> Campaign:
    services.audience_from_scores(campaign=campaign, rows=rows(scored_list()), user=business_owner)
    campaign.refresh_from_db()
    return campaign


def churn_outcomes(campaign: Campaign, *, treated_rate: float, holdout_rate: float, seed: int = 5,
                   day: str = "2026-03-01") -> list[dict[str, Any]]:
    """One churned outcome per assigned entity, drawn at each group's rate."""
    rng = np.random.default_rng(seed)
    found = []
    for entity, holdout in campaign.assignments.values_list("entity_id", "arm__is_holdout").order_by("entity_id"):
        rate = holdout_rate if holdout else treated_rate
        found.append({"entity_id": entity, "kpi": "churned", "value": int(rng.random() < rate), "observed_at": day})
    return found


def upload_json(campaign: Campaign, user: Any, records: list[dict[str, Any]]) -> Any:
    return outcomes.outcomes_from_json(campaign=campaign, user=user, body=records)

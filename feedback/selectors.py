"""Business feedback reads. A campaign is visible to whoever can see its model
(`registry.selectors.models_visible_to`): another team's campaign by id is a 404."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404

from feedback.models import (
    Campaign,
    CampaignAnalysis,
    CampaignSignOff,
    OutcomeUpload,
)
from opsportal.roles import Role, has_role
from registry.selectors import can_change_model, models_visible_to


def campaigns_visible_to(user: Any) -> QuerySet[Campaign]:
    return Campaign.objects.filter(model__in=models_visible_to(user).values("pk")).select_related(
        "model", "version", "business_owner", "created_by")


def campaign_for(user: Any, pk: int) -> Campaign:
    campaign = campaigns_visible_to(user).filter(pk=pk).first()
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def campaign_list(user: Any, *, model: str = "") -> QuerySet[Campaign]:
    found = campaigns_visible_to(user).annotate(audience=Count("assignments", distinct=True))
    if model:
        found = found.filter(model__name=model)
    return found.select_related("analysis").order_by("-created_at", "-id")


def can_run_campaign(user: Any, model: Any) -> bool:
    """Create campaigns, load audiences and outcomes: business owners, the model's team, admins."""
    return has_role(user, Role.BUSINESS_OWNER) or can_change_model(user, model)


def can_sign_off(user: Any) -> bool:
    return has_role(user, Role.BUSINESS_OWNER)


def can_request_retraining(user: Any) -> bool:
    return has_role(user, Role.BUSINESS_OWNER, Role.APPROVER)


def upload_for(campaign: Campaign, pk: int) -> OutcomeUpload:
    upload = campaign.uploads.filter(pk=pk).first()
    if upload is None:
        raise Http404("No such upload.")
    return upload


def uploads_of(campaign: Campaign, limit: int = 10) -> list[OutcomeUpload]:
    return list(campaign.uploads.select_related("uploaded_by")[:limit])


def analysis_of(campaign: Campaign) -> CampaignAnalysis | None:
    return CampaignAnalysis.objects.filter(campaign=campaign).first()


def is_analysis_current(campaign: Campaign, analysis: CampaignAnalysis | None) -> bool:
    return analysis is not None and analysis.data_version == campaign.data_version


def arm_sizes(campaign: Campaign) -> dict[int, int]:
    """Audience size per arm id (one GROUP BY)."""
    rows = campaign.assignments.order_by().values("arm_id").annotate(n=Count("id"))
    return {row["arm_id"]: row["n"] for row in rows}


def treatment_assignments(campaign: Campaign) -> QuerySet[Any]:
    """Who gets the action, for the sending system: every non-holdout assignment."""
    return (campaign.assignments.filter(arm__is_holdout=False).select_related("arm", "version")
            .order_by("arm_id", "-score", "entity_id"))


def sign_offs_of_version(version: Any) -> QuerySet[CampaignSignOff]:
    return CampaignSignOff.objects.filter(version=version).select_related("campaign", "user")


def campaigns_by_version(user: Any, model: Any) -> list[dict[str, Any]]:
    """Campaigns of `model` with the primary KPI's uplift from their cached analyses, by model version."""
    rows = []
    for campaign in campaigns_visible_to(user).filter(model=model).select_related("analysis").order_by(
            "version__number", "created_at"):
        analysis = getattr(campaign, "analysis", None)
        primary = _primary(analysis.result) if analysis else None
        for comparison in (primary or {}).get("comparisons", []):
            rows.append({"campaign": campaign, "version": campaign.version.number if campaign.version else None,
                         "kpi": primary["title"], "kind": primary["kind"], **comparison})
        if not primary or not primary.get("comparisons"):
            rows.append({"campaign": campaign, "version": campaign.version.number if campaign.version else None,
                         "kpi": primary["title"] if primary else "", "arm": "", "verdict": "no_data"})
    return rows


def _primary(result: dict[str, Any]) -> dict[str, Any] | None:
    return next((k for k in result.get("kpis", []) if k.get("is_primary")), None)

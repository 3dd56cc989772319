"""Campaign page forms: they parse and bound input only; `feedback.services` decides."""

from __future__ import annotations

from typing import Any

from django import forms

from feedback.models import Direction, KpiKind, SignOffDecision, Targeting
from feedback.services import KPI_NAME, CampaignSpec, KpiSpec
from registry.forms import Bootstrap

MSG_ARMS = "Name at least one treatment arm, one per line."
VERSION_HELP = "The version whose scores pick the audience; or leave empty and choose an alias."


class CampaignForm(Bootstrap, forms.Form):
    name = forms.CharField(max_length=200, label="Campaign name")
    model = forms.ChoiceField(help_text="The model whose scores choose who gets the action.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5_000,
                                  label="The action", help_text="What the treated customers get, e.g. a retention "
                                                                 "email with a 10% discount.")
    version = forms.IntegerField(required=False, min_value=1, label="Model version", help_text=VERSION_HELP)
    alias = forms.ChoiceField(required=False, choices=[("", "—"), ("champion", "Champion at send time"),
                                                       ("challenger", "Challenger at send time")])
    targeting = forms.ChoiceField(choices=Targeting.choices, initial=Targeting.TOP_N)
    target_count = forms.IntegerField(required=False, min_value=1, label="N (for top N)")
    score_threshold = forms.FloatField(required=False, label="Score threshold")
    holdout_share = forms.FloatField(min_value=0, max_value=90, initial=10, label="Holdout share (%)",
                                     help_text="Randomly chosen members of the audience who get nothing: the "
                                               "comparison that shows what the action changed.")
    holdout_name = forms.CharField(max_length=100, initial="holdout", label="Holdout group name")
    arms = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), initial="treatment", label="Treatment arms",
                           help_text="One per line; the audience outside the holdout is split evenly between them.")

    def __init__(self, *args: Any, models: list[tuple[str, str]] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = list(models)

    def clean_arms(self) -> list[str]:
        arms = [line.strip() for line in self.cleaned_data["arms"].splitlines() if line.strip()]
        if not arms or any(len(a) > 100 for a in arms):
            raise forms.ValidationError(MSG_ARMS)
        return arms

    def spec(self, kpis: list[KpiSpec], owner: Any) -> CampaignSpec:
        data = self.cleaned_data
        return CampaignSpec(name=data["name"], description=data["description"], kpis=kpis, arms=data["arms"],
                            holdout_name=data["holdout_name"], holdout_share=data["holdout_share"] / 100,
                            version_number=data["version"], alias=data["alias"], targeting=data["targeting"],
                            target_count=data["target_count"], score_threshold=data["score_threshold"],
                            business_owner=owner)


class KpiForm(Bootstrap, forms.Form):
    name = forms.RegexField(KPI_NAME.pattern, max_length=64, required=False, label="KPI name (as in files)")
    label = forms.CharField(max_length=200, required=False, label="In plain words")
    kind = forms.ChoiceField(choices=KpiKind.choices)
    direction = forms.ChoiceField(choices=Direction.choices)
    value_per_unit = forms.DecimalField(max_digits=14, decimal_places=2, required=False, label="Money per unit")
    missing_as_zero = forms.BooleanField(required=False, label="No outcome row means 0")

    def spec(self, primary: bool) -> KpiSpec | None:
        data = self.cleaned_data
        if not data.get("name"):
            return None
        return KpiSpec(name=data["name"], label=data["label"], kind=data["kind"], direction=data["direction"],
                       value_per_unit=data["value_per_unit"], missing_as_zero=data["missing_as_zero"],
                       is_primary=primary)


KpiFormSet = forms.formset_factory(KpiForm, extra=3, max_num=10)


class AudienceForm(Bootstrap, forms.Form):
    source = forms.ChoiceField(choices=[("job", "A finished batch scoring job"),
                                        ("scores", "A scored list (entity_id, score)"),
                                        ("groups", "Groups already assigned (entity_id, group[, score])")])
    job = forms.IntegerField(required=False, min_value=1, label="Scoring job number")
    file = forms.FileField(required=False, allow_empty_file=False, max_length=255, label="CSV file")


class OutcomesForm(Bootstrap, forms.Form):
    file = forms.FileField(allow_empty_file=False, max_length=255, label="Outcomes CSV",
                           help_text="Columns entity_id, kpi, value and optionally observed_at (ISO date).")


class CommentForm(Bootstrap, forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5_000, label="Comment")


class SignOffForm(Bootstrap, forms.Form):
    decision = forms.ChoiceField(choices=SignOffDecision.choices)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5_000)


class RetrainingForm(Bootstrap, forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5_000,
                             label="Why the model should be retrained")


class LabelsForm(Bootstrap, forms.Form):
    file = forms.FileField(allow_empty_file=False, max_length=255, label="Labels CSV",
                           help_text="Columns id and label, optionally observed_at (ISO date). The id is the "
                                     "entity id sent with predictions.")

"""Governance page forms: they parse and bound input only; `registry.promotions` decides."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from registry.forms import Bootstrap
from registry.models import ApprovalPolicy, Decision, PromotionTarget

MSG_THRESHOLD_BOUND = "Give a minimum, a maximum or both."
MSG_THRESHOLD_ORDER = "The minimum is above the maximum."
MSG_THRESHOLD_TWICE = "“{metric}” has two rows; keep one."
MSG_FAIRNESS_FIELDS = "A fairness check needs a column and a maximum gap."
MSG_AT_FORMAT = "Use a date and time, e.g. 2026-11-03T14:30."
MAX_TEXT = 5_000
POLICY_ROLES = ("approver", "business_owner")
MODEL_CARD_FIELDS = [
    ("description", "Description"),
    ("intended_use", "Intended use"),
    ("limitations", "Limitations"),
    ("training_data_description", "Training data description"),
    ("source_code_ref", "Source code reference"),
]
FAIRNESS_METRICS = [("positive_rate", "Positive rate"), ("tpr", "True positive rate")]


def _reason(label: str, help_text: str = "", rows: int = 2) -> forms.CharField:
    return forms.CharField(max_length=MAX_TEXT, label=label, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": rows}))


class PromotionRequestForm(Bootstrap, forms.Form):
    target = forms.ChoiceField(choices=PromotionTarget.choices, initial=PromotionTarget.STAGING)
    justification = _reason("Justification", "Why this version should go there: what changed and how you checked it.")


class DecisionForm(Bootstrap, forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    comment = forms.CharField(required=False, max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="Optional when approving; required when rejecting.")


class CommentForm(Bootstrap, forms.Form):
    body = _reason("Comment")


class OverrideForm(Bootstrap, forms.Form):
    gate = forms.ChoiceField(label="Failing gate")
    reason = _reason("Reason", "Kept forever on the version and in the audit trail.")

    def __init__(self, *args: Any, gates: list[tuple[str, str]] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["gate"].choices = list(gates)


class RollbackForm(Bootstrap, forms.Form):
    reason = _reason("Reason", "What went wrong with the current version.")


class MomentForm(Bootstrap, forms.Form):
    at = forms.DateTimeField(
        label="At", input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": MSG_AT_FORMAT},
    )


# --- the approval policy ---------------------------------------------------------------------------


class ThresholdForm(Bootstrap, forms.Form):
    metric = forms.CharField(required=False, max_length=100,
                             widget=forms.TextInput(attrs={"placeholder": "e.g. roc_auc"}))
    min = forms.FloatField(required=False, label="Minimum")
    max = forms.FloatField(required=False, label="Maximum")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("min"), data.get("max")
        if data.get("metric") and low is None and high is None:
            raise ValidationError(MSG_THRESHOLD_BOUND)
        if low is not None and high is not None and low > high:
            raise ValidationError(MSG_THRESHOLD_ORDER)
        return data

    def bounds(self) -> tuple[str, dict[str, float]] | None:
        data = self.cleaned_data
        if not data.get("metric"):
            return None
        return data["metric"].strip(), {k: data[k] for k in ("min", "max") if data.get(k) is not None}


class BaseThresholdFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        seen: set[str] = set()
        for form in self.forms:
            pair = form.bounds() if form.is_valid() else None
            if pair and pair[0] in seen:
                raise ValidationError(MSG_THRESHOLD_TWICE.format(metric=pair[0]))
            if pair:
                seen.add(pair[0])

    def thresholds(self) -> dict[str, dict[str, float]]:
        return dict(pair for form in self.forms if (pair := form.bounds()))


ThresholdFormSet = forms.formset_factory(ThresholdForm, formset=BaseThresholdFormSet, extra=2, max_num=30,
                                         validate_max=True)


def threshold_formset(policy: ApprovalPolicy, data: Any = None) -> BaseThresholdFormSet:
    rows = [{"metric": metric, "min": b.get("min"), "max": b.get("max")}
            for metric, b in (policy.gates.get("metric_thresholds") or {}).items()]
    return ThresholdFormSet(data, initial=rows, prefix="thresholds")


def _as_dict(config: Any, when_true: dict[str, Any]) -> dict[str, Any]:
    """A gate's configuration as a dict: `True` means on with defaults, `None`/`False` off."""
    if isinstance(config, dict):
        return config
    return dict(when_true) if config else {}


def _count(label: str) -> forms.IntegerField:
    return forms.IntegerField(min_value=0, max_value=10, label=label, widget=forms.NumberInput(attrs={"step": 1}))


class PolicyForm(Bootstrap, forms.Form):
    staging_approver = _count("Approvers for staging")
    staging_business_owner = _count("Business owners for staging")
    production_approver = _count("Approvers for production")
    production_business_owner = _count("Business owners for production")
    allow_requester_approval = forms.BooleanField(required=False, label="The requester may approve their own request")
    allow_author_approval = forms.BooleanField(required=False, label="The version's author may approve it")
    beats_champion = forms.BooleanField(required=False, label="Must beat or match the champion on the same rows")
    beats_champion_tolerance = forms.FloatField(min_value=0, max_value=1, label="Tolerance",
                                                help_text="How much worse than the champion still passes, e.g. 0.005.")
    signature_compatible = forms.BooleanField(required=False, label="Signature compatible with the champion")
    no_critical_alerts = forms.BooleanField(required=False, label="No open critical alert on the model")
    fairness = forms.BooleanField(required=False, label="Check a fairness gap")
    fairness_column = forms.CharField(required=False, max_length=200, label="Group column",
                                      help_text="A column of the evaluation data, e.g. gender.")
    fairness_metric = forms.ChoiceField(choices=FAIRNESS_METRICS, label="Compared rate")
    fairness_max_gap = forms.FloatField(required=False, min_value=0, max_value=1, label="Largest gap allowed",
                                        help_text="Between the highest and lowest group, e.g. 0.1.")
    model_card_complete = forms.MultipleChoiceField(
        required=False, choices=MODEL_CARD_FIELDS, widget=forms.CheckboxSelectMultiple,
        label="Model-card fields that must be filled in",
    )
    auto_promote = forms.BooleanField(required=False, label="Retraining may promote without people",
                                      help_text="Only when every gate passes; leave off unless you are sure.")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["model_card_complete"].widget.attrs["class"] = "form-check-input"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("fairness") and not (data.get("fairness_column") and data.get("fairness_max_gap") is not None):
            raise ValidationError(MSG_FAIRNESS_FIELDS)
        return data

    @classmethod
    def initial_for(cls, policy: ApprovalPolicy) -> dict[str, Any]:
        gates, needed = policy.gates, policy.required_approvals
        beats = _as_dict(gates.get("beats_champion"), {"enabled": True})
        fairness = _as_dict(gates.get("fairness"), {})
        card = gates.get("model_card_complete")
        initial: dict[str, Any] = {
            f"{target}_{role}": int((needed.get(target) or {}).get(role, 0))
            for target in PromotionTarget.values for role in POLICY_ROLES
        }
        return {
            **initial,
            "allow_requester_approval": policy.allow_requester_approval,
            "allow_author_approval": policy.allow_author_approval,
            "beats_champion": bool(beats) and beats.get("enabled", True) is not False,
            "beats_champion_tolerance": float(beats.get("tolerance", 0.0)),
            "signature_compatible": bool(gates.get("signature_compatible")),
            "no_critical_alerts": bool(gates.get("no_critical_alerts")),
            "fairness": bool(fairness),
            "fairness_column": fairness.get("column", ""),
            "fairness_metric": fairness.get("metric", "positive_rate"),
            "fairness_max_gap": fairness.get("max_gap"),
            "model_card_complete": list(card) if isinstance(card, list) else [],
            "auto_promote": policy.auto_promote,
        }

    def changes(self, policy: ApprovalPolicy, thresholds: dict[str, dict[str, float]]) -> dict[str, Any]:
        """The `changes` for `promotions.policy_update`; roles and gates the form does not show are kept."""
        data = self.cleaned_data
        return {
            "required_approvals": self._required_approvals(policy),
            "allow_requester_approval": data["allow_requester_approval"],
            "allow_author_approval": data["allow_author_approval"],
            "gates": {**policy.gates, **self._gates(thresholds)},
            "auto_promote": data["auto_promote"],
        }

    def _required_approvals(self, policy: ApprovalPolicy) -> dict[str, dict[str, int]]:
        needed: dict[str, dict[str, int]] = {}
        for target in PromotionTarget.values:
            roles = {**(policy.required_approvals.get(target) or {})}
            roles.update({role: self.cleaned_data[f"{target}_{role}"] for role in POLICY_ROLES})
            needed[target] = {role: int(n) for role, n in roles.items() if int(n) > 0}
        return needed

    def _gates(self, thresholds: dict[str, dict[str, float]]) -> dict[str, Any]:
        data = self.cleaned_data
        fairness = ({"column": data["fairness_column"].strip(), "metric": data["fairness_metric"],
                     "max_gap": data["fairness_max_gap"]} if data["fairness"] else None)
        return {
            "validation_passed": True,
            "metric_thresholds": thresholds,
            "beats_champion": {"enabled": data["beats_champion"], "tolerance": data["beats_champion_tolerance"]},
            "signature_compatible": data["signature_compatible"],
            "no_critical_alerts": data["no_critical_alerts"],
            "fairness": fairness,
            "model_card_complete": data["model_card_complete"] or None,
        }

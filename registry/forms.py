"""Registry page forms: they parse and bound input only; the services decide."""

from __future__ import annotations

import json
import math
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from registry.models import ArtifactFormat, Stage, Task, slug_validator

MSG_METRICS_JSON = 'Metrics must be JSON, e.g. {"auc": 0.84}: {error}.'
MSG_METRICS_SHAPE = 'Metrics must be a JSON object of names to finite numbers, e.g. {"auc": 0.84, "f1": 0.61}.'
MSG_TOO_MANY_TAGS = "At most 20 tags."
MAX_METRICS = 200
MAX_TAGS = 20


class Bootstrap:
    """Bootstrap 5 classes on every widget, so templates can render `{{ field }}` as is."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs["class"] = css

    def add_error(self, field: str | None, error: Any) -> None:
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields and "is-invalid" not in self.fields[name].widget.attrs["class"]:
                self.fields[name].widget.attrs["class"] += " is-invalid"


def _tags(value: str) -> list[str]:
    """Comma-separated tags → a sorted, de-duplicated list of valid slugs."""
    tags = sorted({t.strip().lower() for t in value.split(",") if t.strip()})
    if len(tags) > MAX_TAGS:
        raise ValidationError(MSG_TOO_MANY_TAGS)
    for tag in tags:
        if len(tag) > 50:
            raise ValidationError(f"“{tag}” is longer than 50 characters.")
        try:
            slug_validator(tag)
        except ValidationError:
            raise ValidationError(f"“{tag}”: " + slug_validator.message) from None
    return tags


def parse_metrics(text: str) -> dict[str, float]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(MSG_METRICS_JSON.format(error=exc.msg)) from None
    if not isinstance(value, dict) or len(value) > MAX_METRICS:
        raise ValidationError(MSG_METRICS_SHAPE)
    for name, number in value.items():
        finite = isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)
        if not finite or len(name) > 100:
            raise ValidationError(MSG_METRICS_SHAPE)
    return value


class ModelFilterForm(Bootstrap, forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    stage = forms.ChoiceField(required=False, choices=[("", "Any stage"), *Stage.choices])
    tag = forms.CharField(required=False, max_length=50)
    owner = forms.CharField(required=False, max_length=150)
    team = forms.ChoiceField(required=False, choices=[("", "Any team")])

    def __init__(self, *args: Any, teams: list[tuple[str, str]] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "Any team"), *teams]


class ModelEditForm(Bootstrap, forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 4}))
    business_objective = forms.CharField(
        required=False,
        max_length=5_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the business gains when the model works, e.g. “keep 2% more customers each quarter”.",
    )
    tags = forms.CharField(
        required=False, max_length=1_100, help_text="Comma separated, e.g. “retention, email”."
    )

    def clean_tags(self) -> list[str]:
        return _tags(self.cleaned_data["tags"])


class ModelCreateForm(ModelEditForm):
    name = forms.CharField(
        max_length=64,
        validators=[slug_validator],
        help_text="Used in URLs and by the API and CLI, e.g. “churn”. It cannot be changed later.",
    )
    title = forms.CharField(max_length=200, required=False, help_text="Readable name; the name is used if empty.")
    task = forms.ChoiceField(choices=Task.choices)
    team = forms.ChoiceField(required=False, help_text="The team whose data scientists can change the model.")

    field_order = ["name", "title", "task", "team", "description", "business_objective", "tags"]

    def __init__(self, *args: Any, teams: list[tuple[str, str]] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = list(teams) or [("", "No team yet")]
        self.fields["team"].required = bool(teams)


class VersionUploadForm(Bootstrap, forms.Form):
    artifact = forms.FileField(label="Model file", allow_empty_file=False)
    format = forms.ChoiceField(choices=ArtifactFormat.choices, initial=ArtifactFormat.SKOPS)
    reference_data = forms.FileField(
        required=False,
        label="Reference data (CSV or Parquet)",
        help_text="A sample of the training data, with the target column: used to test the model, "
        "infer its signature, compute feature importance and detect drift later.",
    )
    target_column = forms.CharField(required=False, max_length=200, help_text="e.g. Churn")
    metrics = forms.CharField(
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"auc": 0.84}', "spellcheck": "false"}),
        help_text="JSON object of metric names to numbers, measured on your holdout set.",
    )
    description = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 3}))
    intended_use = forms.CharField(required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 2}))
    limitations = forms.CharField(required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 2}))
    source_code_ref = forms.CharField(
        required=False, max_length=500, label="Source code reference", help_text="e.g. a Git commit or notebook URL"
    )
    training_data_description = forms.CharField(
        required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 2})
    )
    parent_version = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, help_text="The version this one was derived from, if any."
    )

    def __init__(self, *args: Any, parents: list[int] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["parent_version"].choices = [("", "None"), *((n, f"v{n}") for n in parents)]

    def clean_metrics(self) -> dict[str, float]:
        return parse_metrics(self.cleaned_data["metrics"])


class VersionEditForm(Bootstrap, forms.Form):
    description = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 4}))
    intended_use = forms.CharField(required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 3}))
    limitations = forms.CharField(required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 3}))
    training_data_description = forms.CharField(
        required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 3})
    )
    source_code_ref = forms.CharField(required=False, max_length=500, label="Source code reference")


class CompareForm(Bootstrap, forms.Form):
    a = forms.IntegerField(min_value=1, label="Version A")
    b = forms.IntegerField(min_value=1, label="Version B")


class TrustedTypeForm(Bootstrap, forms.Form):
    name = forms.CharField(
        max_length=255, label="Type", help_text="Fully qualified, e.g. sklearn.tree._tree.Tree"
    )
    reason = forms.CharField(
        max_length=2_000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why it is safe to load; kept in the audit trail.",
    )


class PickleForm(Bootstrap, forms.Form):
    allow_pickle = forms.BooleanField(required=False, label="Accept pickle / joblib files")

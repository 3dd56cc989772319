"""Scoring page forms: they parse and bound input only; `scoring.batch` and `scoring.services` decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from registry.forms import Bootstrap
from registry.models import AliasName
from scoring.models import ChallengerMode

MSG_NUMBER_NEEDED = "Give the version number to score with."
MSG_CANARY_PERCENT = "A canary needs a share between 1 and 100 %; choose “Off” to send no traffic."
SPECIFIC = "number"
VERSION_CHOICES = [
    (AliasName.CHAMPION, "Champion"),
    (AliasName.CHALLENGER, "Challenger"),
    (SPECIFIC, "A specific version"),
]


class JobCreateForm(Bootstrap, forms.Form):
    model = forms.ChoiceField(help_text="Models you can see that have a validated version.")
    version = forms.ChoiceField(choices=VERSION_CHOICES, initial=AliasName.CHAMPION, label="Score with")
    number = forms.IntegerField(required=False, min_value=1, label="Version number",
                                help_text="Only for “A specific version”: a ready version, e.g. 3.")
    file = forms.FileField(label="File to score (CSV or Parquet)", allow_empty_file=False, max_length=255,
                           help_text="One row per entity, with every input column of the model; "
                                     "other columns are ignored.")
    id_column = forms.CharField(required=False, max_length=200, label="Id column",
                                help_text="Copied to the results so you can join them back, e.g. customer_id.")
    chunk_size = forms.IntegerField(min_value=100, max_value=100_000, initial=5000, label="Rows per chunk",
                                    help_text="Each chunk is scored by one worker task.")
    max_error_rate = forms.FloatField(min_value=0, max_value=100, initial=5, label="Maximum error rate (%)",
                                      help_text="Above this share of unscorable rows the job is marked failed.")
    log_predictions = forms.BooleanField(required=False, label="Log predictions for monitoring",
                                         help_text="Adds every scored row to the prediction log, for drift and "
                                                   "performance once labels arrive.")

    def __init__(self, *args: Any, models: list[tuple[str, str]] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = list(models)
        self.fields["file"].widget.attrs["accept"] = ".csv,.parquet,.pq,text/csv"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("version") == SPECIFIC and data.get("number") is None and "number" not in self.errors:
            self.add_error("number", MSG_NUMBER_NEEDED)
        return data

    def target(self) -> dict[str, Any]:
        """Keyword arguments for `services.resolve_version`."""
        data = self.cleaned_data
        if data["version"] == SPECIFIC:
            return {"alias": None, "number": data["number"]}
        return {"alias": data["version"], "number": None}

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `batch.job_create`, the error rate as a fraction."""
        data = self.cleaned_data
        return {"id_column": data["id_column"].strip(), "chunk_size": data["chunk_size"],
                "max_error_rate": data["max_error_rate"] / 100, "log_predictions": data["log_predictions"]}


class TrafficForm(Bootstrap, forms.Form):
    challenger_mode = forms.ChoiceField(choices=ChallengerMode.choices, label="Challenger mode")
    canary_percent = forms.IntegerField(required=False, min_value=0, max_value=100, label="Canary share (%)",
                                        help_text="Share of entities that get the challenger's answer.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("challenger_mode") != ChallengerMode.CANARY:
            data["canary_percent"] = 0
        elif not data.get("canary_percent") and "canary_percent" not in self.errors:
            raise ValidationError({"canary_percent": MSG_CANARY_PERCENT})
        return data

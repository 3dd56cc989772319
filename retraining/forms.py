"""Retraining page forms: they parse and bound input only; `retraining.services` decides."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from registry.forms import Bootstrap
from retraining import recipes
from retraining.models import DataSource, PromotionGoal, RecipeKind
from retraining.services import RecipeInput

MSG_JSON = 'Hyperparameters must be a JSON object, e.g. {{"C": 0.5, "max_iter": 500}}: {error}.'
MSG_JSON_OBJECT = 'Hyperparameters must be a JSON object, e.g. {"C": 0.5}.'


class RecipeForm(Bootstrap, forms.Form):
    kind = forms.ChoiceField(choices=RecipeKind.choices, label="How to train")
    estimator = forms.ChoiceField(required=False, label="Estimator",
                                  help_text="Numeric inputs are imputed and scaled, text inputs imputed and one-hot "
                                            "encoded (categories unseen in training are ignored).")
    hyperparameters = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                      label="Hyperparameters (JSON)",
                                      help_text='Checked against the estimator parameters, e.g. {"C": 0.5}. '
                                                "For a function, its parameters.")
    function_path = forms.ChoiceField(required=False, label="Registered training function",
                                      help_text="Functions the deployment lists in RETRAINING_FUNCTIONS.")
    data_source = forms.ChoiceField(choices=DataSource.choices, label="Training data")
    dataset = forms.FileField(required=False, label="Dataset (CSV or Parquet)", max_length=255,
                              help_text="Replaces the stored dataset. Needs the target column and the model's inputs.")
    window_days = forms.IntegerField(min_value=1, max_value=3650, initial=90, label="Window (days)",
                                     help_text="Logged predictions of this many days back, joined with their labels.")
    target_column = forms.CharField(max_length=200, label="Target column")
    split_column = forms.CharField(max_length=200, required=False, label="Time column",
                                   help_text="Rows are split in time by this column; empty: file order "
                                             "(logged predictions: the time they were scored).")
    split_cutoff = forms.DateTimeField(required=False, label="Cutoff",
                                       widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                       help_text="Rows at or after it are held out; empty: the latest share below.")
    holdout_fraction = forms.FloatField(min_value=0.05, max_value=0.5, initial=0.2, label="Held-out share",
                                        help_text="0.05 to 0.5 of the rows, the latest ones.")
    cron = forms.CharField(max_length=100, required=False, label="Schedule (cron)",
                           help_text="Five fields: minute hour day-of-month month day-of-week, e.g. “0 3 * * 1” for "
                                     "Mondays at 03:00. Empty: no schedule.")
    trigger_on_drift = forms.BooleanField(required=False, label="Retrain when a data drift alert opens")
    trigger_on_performance = forms.BooleanField(required=False, label="Retrain when a performance alert opens")
    trigger_on_uplift = forms.BooleanField(required=False, label="Retrain when a campaign uplift alert opens")
    trigger_new_labels = forms.IntegerField(min_value=1, required=False, label="Retrain after this many new labels")
    promotion_target = forms.ChoiceField(choices=PromotionGoal.choices, label="Request promotion to")
    enabled = forms.BooleanField(required=False, initial=True, label="Automatic triggers are on")

    def __init__(self, *args: Any, task: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["estimator"].choices = [("", "—")] + [(n, n) for n in recipes.estimators_for(task)]
        self.fields["function_path"].choices = [("", "—")] + [(p, p) for p in recipes.registered_functions()]
        self.fields["dataset"].widget.attrs["accept"] = ".csv,.parquet,.pq,text/csv"

    def clean_hyperparameters(self) -> dict[str, Any]:
        text = self.cleaned_data["hyperparameters"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(MSG_JSON.format(error=error.msg)) from None
        if not isinstance(value, dict):
            raise ValidationError(MSG_JSON_OBJECT)
        return value

    def recipe_input(self) -> RecipeInput:
        data = {k: v for k, v in self.cleaned_data.items() if k != "dataset"}
        data["window_days"] = data["window_days"] or 90
        return RecipeInput(**data)


def initial_from(recipe: Any) -> dict[str, Any]:
    if recipe is None:
        return {"kind": RecipeKind.BUILTIN, "data_source": DataSource.DATASET, "holdout_fraction": 0.2,
                "window_days": 90, "promotion_target": PromotionGoal.PRODUCTION, "enabled": True}
    fields = ("kind", "estimator", "function_path", "data_source", "window_days", "target_column", "split_column",
              "split_cutoff", "holdout_fraction", "cron", "trigger_on_drift", "trigger_on_performance",
              "trigger_on_uplift", "trigger_new_labels", "promotion_target", "enabled")
    initial = {f: getattr(recipe, f) for f in fields}
    initial["hyperparameters"] = json.dumps(recipe.hyperparameters) if recipe.hyperparameters else ""
    return initial

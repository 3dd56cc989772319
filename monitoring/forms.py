"""Monitoring forms: run now, the schedule, and alert rules."""

from __future__ import annotations

from django import forms

from monitoring.models import Comparison, RuleMetric, Severity


class RunForm(forms.Form):
    version = forms.IntegerField(min_value=1, required=False, help_text="Empty: the production version.")
    hours = forms.IntegerField(min_value=1, max_value=2160, required=False,
                               help_text="Hours of logged predictions up to now (empty: the schedule's window).")
    current_data = forms.FileField(required=False, help_text="Or a CSV/Parquet file of current data to compare.")


class ScheduleForm(forms.Form):
    every_hours = forms.IntegerField(min_value=1, max_value=720, initial=24, label="Run every (hours)")
    window_hours = forms.IntegerField(min_value=1, max_value=2160, initial=24, label="Over the last (hours)")
    enabled = forms.BooleanField(required=False, initial=True)


class RuleForm(forms.Form):
    metric = forms.ChoiceField(choices=RuleMetric.choices)
    comparison = forms.ChoiceField(choices=Comparison.choices)
    threshold = forms.FloatField()
    window_runs = forms.IntegerField(min_value=1, max_value=30, initial=1, label="Consecutive runs")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.WARNING)

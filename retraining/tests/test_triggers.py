"""Triggers: alerts, schedules, new labels and people; overlapping triggers give one run."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from feedback.models import Label
from monitoring.models import AlertKind, Severity
from monitoring.services import alert_raise
from retraining import services
from retraining.models import RetrainingRun

pytestmark = pytest.mark.django_db


def raise_alert(model, kind, key="k"):
    alert, _ = alert_raise(model=model, key=key, kind=kind, severity=Severity.WARNING, title=f"{kind} on tenure")
    return alert


def test_a_drift_alert_starts_a_run_when_the_recipe_asks_for_it(churn_model, make_recipe):
    make_recipe(trigger_on_drift=True)
    run = services.retraining_trigger_on_alert(alert_id=raise_alert(churn_model, AlertKind.DRIFT).pk)
    assert (run.trigger, run.status, run.trigger_detail) == ("alert", "queued", "Data drift: drift on tenure")


@pytest.mark.parametrize("kind", [AlertKind.PERFORMANCE, AlertKind.RETRAINING, AlertKind.SERVICE])
def test_other_alert_kinds_start_nothing(churn_model, make_recipe, kind):
    make_recipe(trigger_on_drift=True)
    assert services.retraining_trigger_on_alert(alert_id=raise_alert(churn_model, kind).pk) is None
    assert not RetrainingRun.objects.exists()


def test_a_trigger_during_a_run_starts_no_second_run_and_says_so_in_its_log(churn_model, make_recipe):
    make_recipe(trigger_on_uplift=True)
    first = services.run_start(model=churn_model, trigger="manual")
    assert services.retraining_trigger_on_alert(alert_id=raise_alert(churn_model, AlertKind.UPLIFT).pk) is None
    with pytest.raises(services.RetrainingError) as refused:
        services.run_start(model=churn_model, trigger="api")
    assert (refused.value.status, refused.value.details) == (409, {"run": first.pk})
    assert RetrainingRun.objects.count() == 1
    first.refresh_from_db()
    assert "Alert trigger (Campaign uplift: uplift on tenure) skipped" in first.log


def test_two_beat_schedulers_sending_one_tick_give_one_run_even_after_it_finished(churn_model, make_recipe):
    recipe = make_recipe(cron="0 3 * * *")
    first = services.retraining_scheduled(recipe_id=recipe.pk)
    RetrainingRun.objects.filter(pk=first.pk).update(status="failed")  # a fast run already over
    assert services.retraining_scheduled(recipe_id=recipe.pk) is None
    assert RetrainingRun.objects.count() == 1


def test_the_cron_schedule_is_a_beat_entry_edited_with_the_recipe(churn_model, make_recipe):
    recipe = make_recipe(cron="30 2 * * 1")
    task = PeriodicTask.objects.get(pk=recipe.schedule_id)
    assert (task.task, json.loads(task.args), task.crontab.minute, task.crontab.day_of_week) == (
        "retraining.tasks.retraining_scheduled", [recipe.pk], "30", "1")
    make_recipe(cron="")
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_new_labels_start_a_run_once_there_are_enough(churn_model, make_recipe):
    make_recipe(trigger_new_labels=3)
    for i in range(2):
        Label.objects.create(model=churn_model, entity_id=f"e{i}", label="Yes", observed_at=timezone.now())
    assert services.labels_check() == []
    Label.objects.create(model=churn_model, entity_id="e2", label="No", observed_at=timezone.now())
    [pk] = services.labels_check()
    assert RetrainingRun.objects.get(pk=pk).trigger == "labels"


def test_a_switched_off_recipe_ignores_automatic_triggers(churn_model, make_recipe):
    recipe = make_recipe(trigger_on_drift=True, enabled=False, cron="0 3 * * *")
    assert services.retraining_trigger_on_alert(alert_id=raise_alert(churn_model, AlertKind.DRIFT).pk) is None
    assert services.retraining_scheduled(recipe_id=recipe.pk) is None
    assert PeriodicTask.objects.get(pk=recipe.schedule_id).enabled is False

"""The main journeys in a real browser (headless Debian chromium), the way people use the portal.

Each journey signs in through the login form, moves with the menu and links, does its main action
(with the keyboard where it matters), and every page it sees is checked for console errors. The
tour seeds the whole demo with `manage.py demo`, signs in with the printed credentials, checks the
main pages on a laptop and a tablet and saves the README's screenshots.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from feedback.models import CampaignAnalysis
from monitoring import services as monitoring_services
from monitoring.models import Alert, AlertKind, AlertStatus, Severity
from opsportal import demo
from registry import promotions
from registry import services as registry_services
from registry.models import GatesStatus, ModelVersion, Stage, VersionStatus
from retraining.models import RetrainingRun

# Small worlds for single journeys; the tour uses the full demo.
SMALL = demo.Size(days=28, per_day=120, batches_per_day=2, training_rows=1200, campaign_days=(0, 21),
                  campaign_top=1200)
SEED_BUDGET_SECONDS = 240  # the demo's target is under a minute on a quiet machine; CI shares its cores
TRANSACTIONAL = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _after_price_rise(rows: int = 1500) -> Any:
    """Customers after the shift, labelled: a model trained on them beats v1 on them."""
    world = demo.new_demo(SMALL, seed=7)
    frame = demo.customers(world.rng, rows, drift=1.0)
    frame[demo.TARGET] = ["Yes" if churned else "No" for churned in
                          world.rng.random(rows) < demo.churn_probability(frame, behaviour=1.0)]
    return frame


def _csv(frame: Any) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _challenger_awaiting_approval(world: demo.Demo) -> Any:
    """v2 retrained after the price rise, registered by the data scientist and put up for production."""
    frame = _after_price_rise()
    upload = registry_services.VersionUpload(
        artifact=SimpleUploadedFile("churn-v2.skops", sio.dumps(demo.churn_pipeline(frame))), format="skops",
        reference=SimpleUploadedFile("after-rise.csv", _csv(frame)), target_column=demo.TARGET,
        description="Retrained on customers after the price rise.", intended_use="Weekly retention ranking.")
    dana = world.users["data_scientist"]
    with demo.tasks_inline():  # validation and gates run here, as the worker would run them
        version = registry_services.version_register(model=world.model, user=dana, upload=upload)
        version.refresh_from_db()
        request = promotions.promotion_open(version=version, user=dana, target="production",
                                            justification="Churn shifted after the price rise.")
    request.refresh_from_db()
    assert request.gates_status == GatesStatus.PASSED, request.gate_results
    return request


# --- 1. upload and validation -----------------------------------------------------------------------------


@pytest.mark.worker
@TRANSACTIONAL
def test_it_uploads_a_model_in_the_browser_and_watches_it_validate(browse: Any, celery_worker_process: Any,
                                                                    tmp_path: Path) -> None:
    world = demo.seed(SMALL, steps=["people"])
    registry_services.model_create(user=world.users["data_scientist"], name="churn", task="binary_classification",
                                   title="Customer churn", team=demo.TEAM_SLUG)
    frame = _after_price_rise(600)
    (tmp_path / "churn.skops").write_bytes(sio.dumps(demo.churn_pipeline(frame)))
    (tmp_path / "customers.csv").write_bytes(_csv(frame))
    dana = browse()
    dana.sign_in("dana", world.passwords["data_scientist"])
    dana.page.get_by_role("link", name="Models").first.click()
    dana.page.get_by_role("link", name="churn", exact=True).first.click()
    dana.page.get_by_role("link", name=re.compile("Upload a (new )?version")).first.click()
    dana.settle()
    dana.assert_fits()
    dana.page.set_input_files("input[name=artifact]", str(tmp_path / "churn.skops"))
    dana.page.set_input_files("input[name=reference_data]", str(tmp_path / "customers.csv"))
    dana.page.fill("input[name=target_column]", demo.TARGET)
    dana.page.get_by_role("button", name="Upload and validate").click()
    dana.page.wait_for_url(re.compile(r"/models/churn/versions/1/$"))
    dana.settle()
    status = dana.page.get_by_test_id("version-status")
    status.get_by_text("ready", exact=True).wait_for(timeout=120_000)  # the worker's sandbox, seen by htmx
    dana.assert_no_console_errors()
    assert ModelVersion.objects.get(model__name="churn", number=1).status == VersionStatus.READY


# --- 2. approval ------------------------------------------------------------------------------------------------


@TRANSACTIONAL
def test_it_lets_an_approver_read_the_gates_approve_and_see_the_new_champion(browse: Any) -> None:
    world = demo.seed(SMALL, steps=["people", "champion"])
    request = _challenger_awaiting_approval(world)
    april = browse()
    april.sign_in("april", world.passwords["approver"])
    april.page.get_by_role("link", name="Approvals").click()
    april.settle()
    april.assert_fits()
    april.page.get_by_role("link", name="churn v2").first.click()
    april.settle()
    for result in request.gate_results:
        assert "pass" in april.page.get_by_test_id(f"gate-{result['gate']}").inner_text()
    assert "Beats or matches the champion" in april.page.get_by_test_id("gate-results").inner_text()
    april.assert_fits()
    approve = april.page.get_by_test_id("approve")
    april.tab_to(approve)
    with april.page.expect_navigation():
        april.page.keyboard.press("Enter")  # decided with the keyboard alone
    april.settle()
    april.page.get_by_role("link", name="churn", exact=True).first.click()
    april.settle()
    assert april.page.get_by_test_id("alias-champion").inner_text().strip().endswith("champion: v2")
    assert ModelVersion.objects.get(pk=request.version_id).stage == Stage.PRODUCTION


# --- 3. the campaign dashboard -----------------------------------------------------------------------------------


@TRANSACTIONAL
def test_it_shows_a_business_owner_the_campaign_summary_and_comments(browse: Any) -> None:
    world = demo.seed(SMALL, steps=["people", "champion", "traffic", "campaign"])
    result = CampaignAnalysis.objects.get(campaign=world.campaign).result
    bruno = browse()
    bruno.sign_in("bruno", world.passwords["business_owner"])
    bruno.page.get_by_role("link", name="Campaigns").click()
    bruno.settle()
    bruno.page.get_by_role("link", name=world.campaign.name).click()
    bruno.settle()
    primary = next(k for k in result["kpis"] if k["is_primary"])
    summary = bruno.page.get_by_test_id("summary-card").first.inner_text()
    assert primary["comparisons"][0]["summary"] in summary
    comments = bruno.page.get_by_test_id("comment").all_inner_texts()
    assert [c.split()[0] for c in comments] == ["bruno", "dana"]
    assert "The holdout makes this convincing" in comments[0]
    bruno.assert_fits()
    bruno.tab_to(bruno.page.locator("form[action$='/comments/'] textarea"), limit=400)  # past every chart


# --- 4. acknowledging an alert ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["data_scientist", "approver"])
@TRANSACTIONAL
def test_it_lets_the_people_watching_a_model_acknowledge_an_alert(browse: Any, role: str) -> None:
    world = demo.seed(SMALL, steps=["people"])
    model = registry_services.model_create(user=world.users["data_scientist"], name="churn",
                                           task="binary_classification", title="Customer churn", team=demo.TEAM_SLUG)
    alert, _ = monitoring_services.alert_raise(model=model, key="drift:demo", kind=AlertKind.DRIFT,
                                               severity=Severity.WARNING, title="MonthlyCharges drifted")
    person = browse()
    person.sign_in(demo.PEOPLE[role][0], world.passwords[role])
    person.page.get_by_role("link", name="Alerts").click()
    person.settle()
    person.assert_fits()
    row = person.page.get_by_role("row").filter(has_text="MonthlyCharges drifted")
    acknowledge = row.get_by_role("button", name="Acknowledge")
    person.tab_to(acknowledge)
    with person.page.expect_navigation():
        person.page.keyboard.press("Enter")
    person.settle()
    assert f"by {demo.PEOPLE[role][0]}" in row.inner_text()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_by == world.users[role]


# --- the demo, toured ---------------------------------------------------------------------------------------


def _printed_passwords(output: str) -> dict[str, str]:
    found = {}
    for key, (username, *_rest) in demo.PEOPLE.items():
        match = re.search(rf"^\s+{re.escape(demo.ROLE_LABELS[key])}\s+{username}\s+(\S+)$", output, re.MULTILINE)
        assert match, f"no sign-in printed for {username}:\n{output}"
        found[username] = match.group(1)
    return found


TOUR = {  # who looks at which page, and the screenshot it makes
    "dana": [("/", "home"), ("/models/churn/", "model"), ("/monitoring/models/churn/", "model-health"),
             ("/monitoring/", "alerts"), ("/retraining/runs/{run}/", "retraining-run")],
    "april": [("/approvals/", "approvals"), ("/approvals/{request}/", "promotion-request")],
    "bruno": [("/campaigns/", "campaigns"), ("/campaigns/{campaign}/", "campaign")],
    "admin": [("/models/churn/versions/{challenger}/", "version")],
}


@TRANSACTIONAL
def test_it_seeds_the_demo_and_shows_every_main_page_on_a_laptop_and_a_tablet(browse: Any) -> None:
    output = io.StringIO()
    started = time.perf_counter()
    call_command("demo", stdout=output)
    assert time.perf_counter() - started < SEED_BUDGET_SECONDS, output.getvalue()
    passwords = _printed_passwords(output.getvalue())
    run = RetrainingRun.objects.get(model__name="churn")
    challenger = run.produced_version
    ids = {"run": run.pk, "request": run.promotion_request_id, "challenger": challenger.number,
           "campaign": CampaignAnalysis.objects.get().campaign_id}
    assert challenger.stage == Stage.NONE and challenger.status == VersionStatus.READY
    assert Alert.objects.filter(model__name="churn", status=AlertStatus.OPEN).exists()
    for username, pages in TOUR.items():
        person = browse()
        person.sign_in(username, passwords[username])
        for path, name in pages:
            person.open(path.format(**ids))
            person.assert_fits()
            person.screenshot(name)
    assert User.objects.filter(username__in=passwords).count() == len(demo.PEOPLE)


@TRANSACTIONAL
def test_it_prints_new_working_passwords_when_the_demo_starts_again() -> None:
    world = demo.seed(SMALL, steps=["people"])
    registry_services.model_create(user=world.users["data_scientist"], name=demo.MODEL_NAME,
                                   task="binary_classification", title="Customer churn", team=demo.TEAM_SLUG)
    output = io.StringIO()
    call_command("demo", stdout=output)
    passwords = _printed_passwords(output.getvalue())
    assert "already here" in output.getvalue()
    for username, password in passwords.items():
        assert User.objects.get(username=username).check_password(password)
        assert password not in world.passwords.values()

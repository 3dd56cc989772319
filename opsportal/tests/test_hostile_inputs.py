"""Hostile input on purpose: HTML in free text, spreadsheet formulas in exports, path-traversal file
names, too many fields. (Hostile model files are proved in registry/tests/test_safety.py and the
sandboxed Evidently report in monitoring/tests/test_pages.py; see the README's Guarantees.)"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from feedback import outcomes
from feedback import services as feedback_services
from feedback.services import CampaignSpec, KpiSpec
from registry import services as registry_services
from scoring.batch import safe_cell

pytestmark = pytest.mark.django_db

XSS = "</script><script>fetch('/api/v1/me/')</script><img src=x onerror=alert(1)>"
ESCAPED = "&lt;/script&gt;&lt;script&gt;fetch("
FORMULAS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=2+2"]


@pytest.fixture
def hostile_model(data_scientist: Any) -> Any:
    return registry_services.model_create(user=data_scientist, name="churn", task="binary_classification",
                                          title=XSS, description=XSS, business_objective=XSS)


@pytest.fixture
def hostile_campaign(hostile_model: Any, business_owner: Any) -> Any:
    spec = CampaignSpec(name=XSS, description=XSS, seed="s", business_owner=business_owner, holdout_share=0.01,
                        kpis=[KpiSpec("churned", label=XSS, direction="lower")])
    campaign = feedback_services.campaign_create(user=business_owner, model=hostile_model, spec=spec)
    scored = [(i, {"entity_id": entity, "score": 0.5}) for i, entity in enumerate([*FORMULAS, "c1", "c2"], 1)]
    scored += [(i, {"entity_id": f"z{i}", "score": i / 100}) for i in range(10, 100)]
    feedback_services.audience_from_scores(campaign=campaign, rows=scored, user=business_owner)
    feedback_services.campaign_comment(campaign=campaign, user=business_owner, body=XSS)
    return campaign


def _assert_escaped(page: bytes) -> None:
    text = page.decode()
    assert "<script>fetch(" not in text and "onerror=alert(1)>" not in text
    assert ESCAPED in text


@pytest.mark.parametrize("url", ["/models/", "/models/churn/", "/models/churn/edit/"])
def test_it_escapes_html_in_model_text_on_every_page(client, data_scientist, hostile_model, url):
    client.force_login(data_scientist)
    response = client.get(url)
    assert response.status_code == 200
    _assert_escaped(response.content)


@pytest.mark.parametrize("url", ["/campaigns/", "/campaigns/{pk}/"])
def test_it_escapes_html_in_campaign_text_and_comments(client, business_owner, hostile_campaign, url):
    client.force_login(business_owner)
    response = client.get(url.format(pk=hostile_campaign.pk))
    assert response.status_code == 200
    _assert_escaped(response.content)


def test_it_returns_free_text_as_json_strings_not_markup(api_client_for, business_owner, hostile_campaign):
    response = api_client_for(business_owner).get(f"/api/v1/campaigns/{hostile_campaign.pk}/")
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["name"] == XSS  # stored as given; escaping is the renderer's job


@pytest.mark.parametrize("value", FORMULAS)
def test_it_writes_formula_like_text_with_a_leading_quote(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", [0.25, -3, 7, None])
def test_it_keeps_numbers_numbers_in_exports(value):
    assert safe_cell(value) == value


def test_it_neutralises_formulas_in_the_treatment_export(client, business_owner, hostile_campaign):
    client.force_login(business_owner)
    body = client.get(f"/campaigns/{hostile_campaign.pk}/treatment.csv").content.decode()
    ids = {row["entity_id"] for row in csv.DictReader(io.StringIO(body))}
    # entity ids are stored stripped, so a tab- or CR-prefixed formula arrives as the formula itself
    assert {"'" + f.strip() for f in FORMULAS} <= ids and "c1" in ids
    assert not [i for i in ids if i.startswith(("=", "+", "-", "@", "\t", "\r"))]


@pytest.mark.parametrize("name", ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "/etc/passwd", "C:\\evil\\x.csv"])
def test_it_never_uses_an_uploaded_name_as_a_path(business_owner, hostile_campaign, name, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = b"entity_id,kpi,value\nc1,churned,1\n"
    upload = outcomes.outcomes_from_file(campaign=hostile_campaign, user=business_owner,
                                         upload_file=SimpleUploadedFile(name, data, content_type="text/csv"))
    stored = getattr(upload, "file_key", "") or getattr(upload, "blob_key", "") or ""
    assert ".." not in stored and "passwd" not in stored and "evil" not in stored
    assert not (settings.BASE_DIR.parent / "etc").exists()


def test_it_answers_too_many_fields_on_a_page_with_400(client, business_owner, hostile_campaign, settings):
    client.force_login(business_owner)
    fields = {f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = client.post(f"/campaigns/{hostile_campaign.pk}/comments/", {**fields, "body": "hi"})
    assert response.status_code == 400


def test_it_answers_too_many_files_on_an_upload_with_400(api_client_for, business_owner, hostile_campaign,
                                                         settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    many = settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1
    files = {f"file{i}": SimpleUploadedFile(f"{i}.csv", b"a\n1\n") for i in range(many)}
    response = api_client_for(business_owner).post(f"/api/v1/campaigns/{hostile_campaign.pk}/outcomes/", files,
                                                   format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_fields"

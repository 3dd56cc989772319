"""Registry pages: visibility, forms calling services, the model card, compare, safety, download."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from accounts.models import AuditEvent
from registry import services
from registry.forms import MSG_METRICS_SHAPE
from registry.models import ModelVersion, RegisteredModel, TrustedType
from registry.tests.fixtures import churn_frame, churn_pipeline, csv_bytes, skops_bytes

pytestmark = pytest.mark.django_db

SIGNATURE_V1 = {"inputs": [{"name": "tenure", "dtype": "integer"}, {"name": "Contract", "dtype": "string"}]}
SIGNATURE_V2 = {"inputs": [{"name": "tenure", "dtype": "float"}]}


def get(client, user, url):
    client.force_login(user)
    return client.get(url)


def upload_fields(**extra):
    return {
        "artifact": SimpleUploadedFile("model.skops", skops_bytes(churn_pipeline())),
        "reference_data": SimpleUploadedFile("reference.csv", csv_bytes(churn_frame())),
        "format": "skops",
        "target_column": "Churn",
        "metrics": '{"auc": 0.84}',
        **extra,
    }


def fail(version, **fields):
    ModelVersion.objects.filter(pk=version.pk).update(status="failed", **fields)


def test_it_lists_only_models_of_the_users_teams(client, churn_model, other_data_scientist):
    services.model_create(user=other_data_scientist, name="fraud", task="binary_classification")
    html = get(client, other_data_scientist, "/models/").content.decode()
    assert 'href="/models/fraud/"' in html
    assert "/models/churn/" not in html


def test_it_answers_404_for_another_teams_model(client, churn_model, other_data_scientist):
    assert get(client, other_data_scientist, "/models/churn/").status_code == 404


def test_it_filters_the_list_by_search(client, churn_model, data_scientist):
    services.model_create(user=data_scientist, name="upsell", task="regression", title="Basket upsell")
    html = get(client, data_scientist, "/models/?q=basket").content.decode()
    assert "/models/upsell/" in html
    assert "/models/churn/" not in html


def test_it_shows_the_cli_when_there_are_no_models(client, data_scientist):
    html = get(client, data_scientist, "/models/").content.decode()
    assert "opsportal push model.skops --name churn --reference ref.parquet" in html


def test_it_hides_the_new_model_button_from_business_owners(client, churn_model, business_owner):
    response = get(client, business_owner, "/models/")
    assert b"/models/churn/" in response.content
    assert b'data-testid="new-model"' not in response.content


def test_it_creates_a_model_and_redirects_to_it(client, data_scientist):
    client.force_login(data_scientist)
    form = {"name": "fraud", "task": "binary_classification", "team": "data-science", "tags": "risk, cards"}
    response = client.post("/models/new/", form)
    assert response.status_code == 302 and response["Location"] == "/models/fraud/"
    model = RegisteredModel.objects.get(name="fraud")
    assert sorted(model.tags.values_list("tag", flat=True)) == ["cards", "risk"]


def test_it_shows_the_service_refusal_on_the_create_form(client, churn_model, data_scientist):
    client.force_login(data_scientist)
    response = client.post("/models/new/", {"name": "churn", "task": "regression", "team": "data-science"})
    assert response.status_code == 400
    assert services.MSG_NAME_TAKEN in response.content.decode()


def test_it_registers_a_version_with_the_plain_upload_form(client, churn_model, data_scientist):
    client.force_login(data_scientist)
    response = client.post("/models/churn/upload/", upload_fields())
    assert response.status_code == 302 and response["Location"] == "/models/churn/versions/1/"
    version = churn_model.versions.get()
    assert version.status == "validating" and version.metrics == {"auc": 0.84}


def test_it_explains_bad_metrics_json_on_the_upload_form(client, churn_model, data_scientist):
    client.force_login(data_scientist)
    response = client.post("/models/churn/upload/", upload_fields(metrics='["auc", 0.84]'))
    assert response.status_code == 400
    assert escape(MSG_METRICS_SHAPE) in response.content.decode()
    assert not churn_model.versions.exists()


def test_it_refuses_the_upload_page_to_a_business_owner(client, churn_model, business_owner):
    assert get(client, business_owner, "/models/churn/upload/").status_code == 403


def test_it_shows_a_validated_version_card(client, churn_model, data_scientist, validate):
    client.force_login(data_scientist)
    client.post("/models/churn/upload/", upload_fields())
    validate(churn_model.versions.get())
    html = client.get("/models/churn/versions/1/").content.decode()
    assert ">ready<" in html
    assert 'data-testid="engine">ONNX Runtime<' in html
    assert "<code>tenure</code>" in html and "<code>Contract</code>" in html
    assert '<script id="importance-figure" type="application/json">' in html
    assert "vendor/plotly/plotly.min.js" in html


def test_it_shows_why_a_version_failed(client, register, data_scientist):
    version = register()
    fail(version, status_reason="The model crashed the validator (signal 9).")
    html = get(client, data_scientist, "/models/churn/versions/1/").content.decode()
    assert "The model crashed the validator (signal 9)." in html


def test_it_links_admins_to_the_safety_page_for_untrusted_types(client, register, admin_user):
    fail(register(), status_reason="untrusted", untrusted_types=["sklearn.tree._tree.Tree"])
    html = get(client, admin_user, "/models/churn/versions/1/").content.decode()
    assert "<code>sklearn.tree._tree.Tree</code>" in html
    assert "/models/safety/?name=sklearn.tree._tree.Tree" in html


def test_it_escapes_html_in_a_description(client, register, data_scientist):
    register(description="<script>alert(1)</script>")
    html = get(client, data_scientist, "/models/churn/versions/1/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


def test_it_polls_the_status_until_validation_ends(client, register, data_scientist):
    version = register()
    client.force_login(data_scientist)
    url = "/models/churn/versions/1/status/"
    assert b'hx-trigger="every 2s"' in client.get(url, headers={"HX-Request": "true"}).content
    fail(version, status_reason="x")
    assert client.get(url, headers={"HX-Request": "true"})["HX-Refresh"] == "true"


def test_it_compares_metrics_and_signatures(client, register, data_scientist):
    first = register(metrics={"auc": 0.84})
    second = register(churn_pipeline(churn_frame(seed=8)), metrics={"auc": 0.86}, parent_number=1)
    ModelVersion.objects.filter(pk=first.pk).update(signature=SIGNATURE_V1)
    ModelVersion.objects.filter(pk=second.pk).update(signature=SIGNATURE_V2)
    html = get(client, data_scientist, "/models/churn/compare/?a=1&b=2").content.decode()
    assert 'data-testid="delta">+0.02<' in html
    assert "removed" in html and "integer → float" in html
    assert html.count('data-testid="breaking"') == 2


@pytest.mark.parametrize("persona", ["approver", "data_scientist"], indirect=True)
def test_it_keeps_the_safety_page_for_admins(client, persona):
    assert get(client, persona, "/models/safety/").status_code == 403


def test_it_refuses_to_trust_a_main_type(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/models/safety/", {"action": "trust", "name": "__main__.evil", "reason": "please"})
    assert response.status_code == 400
    assert services.MSG_NEVER_TRUSTABLE in response.content.decode()
    assert not TrustedType.objects.filter(name="__main__.evil").exists()


def test_it_switches_pickle_on_for_admins(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/models/safety/", {"action": "pickle", "allow_pickle": "on"}, follow=True)
    assert b'data-testid="pickle-state">accepted<' in response.content


def test_it_downloads_the_exact_artifact_bytes(client, register, data_scientist):
    data = skops_bytes(churn_pipeline())
    register(data=data)
    response = get(client, data_scientist, "/models/churn/versions/1/download/")
    assert b"".join(response.streaming_content) == data
    assert 'filename="churn-v1.skops"' in response["Content-Disposition"]


def test_it_refuses_the_download_to_a_business_owner(client, register, business_owner):
    register()
    assert get(client, business_owner, "/models/churn/versions/1/download/").status_code == 403


def test_it_audits_a_model_card_edit(client, register, data_scientist):
    register()
    client.force_login(data_scientist)
    response = client.post("/models/churn/versions/1/edit/", {"limitations": "Not for business customers."})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="version.metadata_updated")
    assert event.payload["after"] == {"limitations": "Not for business customers."}


def test_it_audits_a_model_edit(client, churn_model, data_scientist):
    client.force_login(data_scientist)
    client.post("/models/churn/edit/", {"title": "Churn risk", "tags": "retention, email"})
    event = AuditEvent.objects.get(action="model.updated")
    assert event.payload["after"]["tags"] == ["email", "retention"]


def test_it_lets_an_admin_accept_a_sklearn_mismatch(client, register, admin_user):
    version = register()
    fail(version, status_reason="mismatch", trained_sklearn_version="1.3.2")
    client.force_login(admin_user)
    response = client.post("/models/churn/versions/1/accept-sklearn-version/")
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == "validating" and version.version_mismatch_accepted_by == admin_user

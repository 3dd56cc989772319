from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame, churn_pipeline, csv_bytes, skops_bytes, upload

pytestmark = pytest.mark.django_db
MODELS = "/api/v1/models/"


def new_model(client, **fields):
    return client.post(MODELS, {"name": "churn", "task": "binary_classification", **fields}, format="json")


def test_it_creates_a_model_for_the_data_scientists_team(data_scientist, api_client_for):
    response = new_model(api_client_for(data_scientist), title="Churn", tags=["retention", "email"])
    assert response.status_code == 201
    body = response.json()
    assert body["team"] == "data-science" and body["owners"] == ["dana"]
    assert body["tags"] == ["email", "retention"] and body["versions"] == []
    assert AuditEvent.objects.filter(action="model.created", actor=data_scientist).count() == 1


def test_it_refuses_a_taken_name_with_409(data_scientist, api_client_for):
    client = api_client_for(data_scientist)
    new_model(client)
    response = new_model(client)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("name", ["Churn", "churn_model", "-churn", "new", "safety", "x" * 65, "../etc"])
def test_it_refuses_bad_model_names_per_field(data_scientist, api_client_for, name):
    response = new_model(api_client_for(data_scientist), name=name)
    assert response.status_code == 400
    assert "name" in response.json()["error"]["details"]


def test_it_refuses_a_team_the_creator_is_not_in(data_scientist, other_data_scientist, api_client_for):
    response = new_model(api_client_for(data_scientist), team="risk")
    assert response.status_code == 400
    assert "team" in response.json()["error"]["details"]


@pytest.mark.parametrize("persona", ["business_owner", "approver", "outsider"], indirect=True)
def test_it_lets_only_data_scientists_create_models(persona, api_client_for):
    assert new_model(api_client_for(persona)).status_code == 403


def test_it_registers_a_version_and_answers_while_it_validates(data_scientist, api_client_for, churn_model):
    body = {"artifact": upload(skops_bytes(churn_pipeline())), "format": "skops", "target_column": "Churn",
            "reference_data": upload(csv_bytes(churn_frame()), "ref.csv"), "metrics": '{"auc": 0.84}'}
    response = api_client_for(data_scientist).post(f"{MODELS}churn/versions/", body, format="multipart")
    assert response.status_code == 201
    version = response.json()
    assert (version["number"], version["status"], version["metrics"]) == (1, "validating", {"auc": 0.84})
    assert len(version["artifact_sha256"]) == 64 and version["signature"] == {}


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"metrics": '{"auc": "high"}'}, "metrics"), ({"metrics": "not json"}, "metrics"),
     ({"format": "tensorflow"}, "format"), ({"parent_version": "0"}, "parent_version")],
)
def test_it_refuses_bad_version_fields_per_field(data_scientist, api_client_for, churn_model, fields, field):
    body = {"artifact": upload(skops_bytes(churn_pipeline())), **fields}
    response = api_client_for(data_scientist).post(f"{MODELS}churn/versions/", body, format="multipart")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not ModelVersion.objects.exists()


def test_it_refuses_a_version_without_an_artifact(data_scientist, api_client_for, churn_model):
    response = api_client_for(data_scientist).post(f"{MODELS}churn/versions/", {"format": "skops"}, format="multipart")
    assert response.status_code == 400
    assert "artifact" in response.json()["error"]["details"]


def test_it_refuses_a_duplicate_artifact_with_409(data_scientist, api_client_for, churn_model):
    data = skops_bytes(churn_pipeline())
    client = api_client_for(data_scientist)
    client.post(f"{MODELS}churn/versions/", {"artifact": upload(data)}, format="multipart")
    response = client.post(f"{MODELS}churn/versions/", {"artifact": upload(data)}, format="multipart")
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"version": 1}
    assert ModelVersion.objects.count() == 1


def test_it_refuses_a_reference_without_the_target_column(data_scientist, api_client_for, churn_model):
    body = {"artifact": upload(skops_bytes(churn_pipeline())), "target_column": "Churned",
            "reference_data": upload(csv_bytes(churn_frame()), "ref.csv")}
    response = api_client_for(data_scientist).post(f"{MODELS}churn/versions/", body, format="multipart")
    assert response.status_code == 400
    assert "Churned" in response.json()["error"]["message"]


def test_it_shows_the_validated_version_with_its_signature(ready_version, data_scientist, api_client_for):
    body = api_client_for(data_scientist).get(f"{MODELS}churn/versions/1/").json()
    assert body["status"] == "ready" and body["engine"] == "onnx" and body["has_onnx_twin"]
    assert [c["name"] for c in body["signature"]["inputs"]][:2] == ["tenure", "MonthlyCharges"]
    model = api_client_for(data_scientist).get(f"{MODELS}churn/").json()
    assert model["versions"][0]["number"] == 1


def test_it_hides_another_teams_models_everywhere(ready_version, other_data_scientist, api_client_for):
    client = api_client_for(other_data_scientist)
    assert client.get(MODELS).json()["count"] == 0
    for url in ["churn/", "churn/versions/", "churn/versions/1/", "churn/versions/1/artifact/"]:
        assert client.get(f"{MODELS}{url}").status_code == 404


def test_it_makes_status_and_signature_read_only(ready_version, data_scientist, approver, api_client_for):
    before = ModelVersion.objects.filter(pk=ready_version.pk).values().get()
    response = api_client_for(data_scientist).patch(
        f"{MODELS}churn/versions/1/", {"status": "approved", "approved_by": approver.pk, "stage": "production"},
        format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"status", "approved_by", "stage"}
    assert ModelVersion.objects.filter(pk=ready_version.pk).values().get() == before


def test_it_audits_model_card_edits_with_before_and_after(ready_version, data_scientist, api_client_for):
    response = api_client_for(data_scientist).patch(
        f"{MODELS}churn/versions/1/", {"intended_use": "Rank customers for retention emails."}, format="json")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="version.metadata_updated")
    assert event.payload["before"] == {"intended_use": ""}
    assert event.payload["after"] == {"intended_use": "Rank customers for retention emails."}


def test_it_downloads_the_exact_artifact_for_permitted_users_only(ready_version, data_scientist, business_owner,
                                                                  approver, api_client_for):
    from django.core.files.storage import default_storage

    response = api_client_for(data_scientist).get(f"{MODELS}churn/versions/1/artifact/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == default_storage.open(ready_version.artifact_key).read()
    assert response["Content-Disposition"] == 'attachment; filename="churn-v1.skops"'
    assert api_client_for(approver).get(f"{MODELS}churn/versions/1/artifact/").status_code == 200
    assert api_client_for(business_owner).get(f"{MODELS}churn/versions/1/artifact/").status_code == 403


def test_it_filters_the_model_list(churn_model, data_scientist, api_client_for):
    client = api_client_for(data_scientist)
    assert client.get(f"{MODELS}?q=churn").json()["count"] == 1
    assert client.get(f"{MODELS}?tag=retention").json()["count"] == 1
    assert client.get(f"{MODELS}?tag=fraud").json()["count"] == 0
    assert client.get(f"{MODELS}?stage=production").json()["count"] == 0
    assert client.get(f"{MODELS}?stage=bogus").status_code == 400


def test_it_compares_two_versions(ready_version, register, validate, data_scientist, api_client_for):
    frame = churn_frame(seed=11).drop(columns=["SeniorCitizen"])
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer([("n", StandardScaler(), ["tenure", "MonthlyCharges"]),
                                  ("c", OneHotEncoder(handle_unknown="ignore"), ["Contract", "PaymentMethod"])])
    model = Pipeline([("f", features), ("m", LogisticRegression())]).fit(frame.drop(columns="Churn"), frame["Churn"])
    validate(register(model, reference=frame, metrics={"auc": 0.86}))
    body = api_client_for(data_scientist).get(f"{MODELS}churn/compare/?a=1&b=2").json()
    assert body["metrics"] == [{"metric": "auc", "a": 0.84, "b": 0.86, "delta": pytest.approx(0.02)}]
    assert {"column": "SeniorCitizen", "change": "removed", "detail": "integer", "breaking": True} in body["signature"]


def test_it_lets_only_admins_manage_trusted_types(admin_user, approver, api_client_for):
    body = {"name": "sklearn.tree._tree.Tree", "reason": "Reviewed: tree arrays only."}
    assert api_client_for(approver).post("/api/v1/registry/trusted-types/", body, format="json").status_code == 403
    response = api_client_for(admin_user).post("/api/v1/registry/trusted-types/", body, format="json")
    assert response.status_code == 201
    assert AuditEvent.objects.filter(action="trust.type_added", actor=admin_user).count() == 1
    refused = api_client_for(admin_user).post(
        "/api/v1/registry/trusted-types/", {"name": "__main__.Evil", "reason": "x"}, format="json")
    assert refused.status_code == 400

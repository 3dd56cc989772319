"""Validation runs the real model in the sandbox subprocess and records what it found."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from accounts.models import AuditEvent
from registry import services
from registry.models import ModelVersion
from registry.tests.fixtures import CATEGORICAL, NUMERIC, churn_frame, churn_pipeline, regression_pipeline

pytestmark = pytest.mark.django_db


def test_it_makes_a_good_pipeline_ready_with_signature_timings_and_importance(ready_version):
    signature = ready_version.signature
    assert [c["name"] for c in signature["inputs"]] == NUMERIC + CATEGORICAL
    contract = next(c for c in signature["inputs"] if c["name"] == "Contract")
    assert contract["dtype"] == "string"
    assert contract["categories"] == ["Month-to-month", "One year", "Two year"]
    assert signature["output"] == {"kind": "classes", "classes": ["No", "Yes"]}
    assert ready_version.validation["timings"]["single_row_ms"] > 0
    assert ready_version.feature_importance[0]["feature"] in ("tenure", "Contract")
    assert ready_version.reference_rows == 600


def test_it_keeps_an_onnx_twin_only_when_it_matches(ready_version):
    assert ready_version.engine == "onnx"
    assert ready_version.onnx_sha256
    assert ready_version.validation["onnx_max_abs_diff"] < 1e-5
    assert "matches scikit-learn" in ready_version.engine_reason


def test_it_serves_a_pipeline_onnx_cannot_convert_with_scikit_learn(register, validate, admin_user,
                                                                     api_client_for, data_scientist):
    frame = churn_frame()
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(frame[NUMERIC], frame["Churn"])
    services.trusted_type_add(admin=admin_user, reason="reviewed",
                              name="sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor")
    version = validate(register(model, reference=frame[[*NUMERIC, "Churn"]]))
    assert version.status == "ready", version.status_reason
    assert version.engine == "sklearn" and not version.onnx_key
    assert version.engine_reason.startswith("No ONNX twin")
    rows = frame[NUMERIC].head(5)
    response = api_client_for(data_scientist).post(
        f"/api/v1/models/churn/versions/{version.number}/predict", {"rows": rows.to_dict("records")}, format="json")
    got = [p["Yes"] for p in response.json()["probabilities"]]
    assert np.allclose(got, model.predict_proba(rows)[:, 1])


def test_it_audits_the_outcome(ready_version):
    actions = list(AuditEvent.objects.filter(target_id=str(ready_version.pk), target_type="registry.modelversion")
                   .values_list("action", flat=True).order_by("id"))
    assert actions == ["version.registered", "version.validated"]


def test_it_fails_a_model_whose_columns_the_reference_lacks(register, validate):
    reference = churn_frame().drop(columns=["Contract"])
    version = validate(register(reference=reference))
    assert version.status == "failed"
    assert "Contract" in version.status_reason


def test_it_fails_a_regressor_registered_as_a_classifier(register, validate):
    frame = churn_frame()
    version = validate(register(regression_pipeline(), reference=frame, target="MonthlyCharges"))
    assert version.status == "failed"
    assert "no classes" in version.status_reason


def test_it_fails_a_wrong_feature_count(register, validate):
    from sklearn.linear_model import LogisticRegression

    frame = churn_frame()
    model = LogisticRegression().fit(np.random.default_rng(0).random((50, 3)), np.tile(["No", "Yes"], 25))
    version = validate(register(model, reference=frame[["tenure", "MonthlyCharges", "Churn"]]))
    assert version.status == "failed"
    assert "expects 3 input columns" in version.status_reason


def test_it_refuses_untrusted_types_then_validates_once_an_admin_trusts_them(register, validate, admin_user):
    frame = churn_frame()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame[NUMERIC], frame["Churn"])
    version = validate(register(forest, reference=frame[[*NUMERIC, "Churn"]]))
    assert version.status == "failed"
    assert version.untrusted_types == ["sklearn.tree._tree.Tree"]
    services.trusted_type_add(admin=admin_user, name="sklearn.tree._tree.Tree", reason="reviewed")
    version.refresh_from_db()
    assert version.status == "validating"
    assert validate(version).status == "ready"


def test_it_ignores_types_a_file_claims_are_trusted(register, validate, tmp_path):
    import io
    import json
    import zipfile

    frame = churn_frame()
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(frame[NUMERIC], frame["Churn"])
    import skops.io as sio

    raw = io.BytesIO(sio.dumps(forest))
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "schema.json":
                schema = json.loads(data)
                schema["trusted"] = ["sklearn.tree._tree.Tree"]  # the file vouching for itself
                data = json.dumps(schema).encode()
            dst.writestr(item, data)
    version = validate(register(data=out.getvalue(), reference=frame[[*NUMERIC, "Churn"]]))
    assert version.status == "failed"
    assert version.untrusted_types == ["sklearn.tree._tree.Tree"]


def test_it_never_changes_a_ready_version_when_validated_again(ready_version):
    before = ModelVersion.objects.filter(pk=ready_version.pk).values().get()
    services.version_validate(version_id=ready_version.pk)
    assert ModelVersion.objects.filter(pk=ready_version.pk).values().get() == before


def test_it_registers_and_validates_a_churn_pipeline_as_the_next_number(register, validate, ready_version):
    second = validate(register(churn_pipeline(churn_frame(seed=9)), parent_number=1))
    assert second.number == 2
    assert second.parent == ready_version
    assert second.status == "ready"

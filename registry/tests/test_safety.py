"""GUARANTEES.md, "Model files are code": hostile and broken files are refused without being loaded."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import skops.io as sio
from django.conf import settings
from django.core.files.storage import default_storage

from accounts.models import AuditEvent
from registry import services
from registry.artifacts import PICKLE_HELP
from registry.models import ModelVersion
from registry.tests.evil import Evil, ExecOnLoad
from registry.tests.fixtures import churn_frame, churn_pipeline, csv_bytes, skops_bytes, upload

pytestmark = pytest.mark.django_db
VERSIONS_URL = "/api/v1/models/churn/versions/"


def post_version(client, artifact: bytes, name: str = "model.skops", fmt: str = "skops", **fields):
    body = {"artifact": upload(artifact, name), "format": fmt,
            "reference_data": upload(csv_bytes(churn_frame()), "ref.csv"), "target_column": "Churn", **fields}
    return client.post(VERSIONS_URL, body, format="multipart")


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def rewrite_schema(data: bytes, change) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename == "schema.json":
                schema = json.loads(content)
                change(schema)
                content = json.dumps(schema).encode()
            dst.writestr(item, content)
    return out.getvalue()


@pytest.fixture
def owner_client(api_client_for, data_scientist, churn_model):
    return api_client_for(data_scientist)


def test_it_refuses_a_pickle_renamed_to_skops_from_its_bytes(owner_client):
    before = stored_files()
    response = post_version(owner_client, pickle.dumps(churn_pipeline()), name="model.skops")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "unsupported_format", "message": PICKLE_HELP,
                                        "details": {"detected": "pickle", "declared": "skops"}}
    assert not ModelVersion.objects.exists()
    assert stored_files() == before


def test_it_refuses_a_text_file_named_skops(owner_client):
    response = post_version(owner_client, b"this is not a model\n", name="model.skops")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_format"
    assert not ModelVersion.objects.exists()


def test_it_refuses_a_hostile_pickle_without_running_it(owner_client, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(ExecOnLoad(f"open({str(marker)!r}, 'w').write('x')"))
    response = post_version(owner_client, payload, name="model.pkl", fmt="pickle")
    assert response.status_code == 400
    assert not marker.exists()


@pytest.mark.parametrize(
    ("hostile", "expected_type"),
    [
        (lambda marker: Evil(), "registry.tests.evil.Evil"),
        (lambda marker: {"f": os.system}, "posix.system"),
    ],
)
def test_it_refuses_untrusted_code_types_listing_them_and_runs_nothing(
    register, validate, tmp_path, monkeypatch, hostile, expected_type
):
    marker = tmp_path / "marker"
    monkeypatch.setenv("OPSPORTAL_TEST_MARKER", str(marker))
    version = validate(register(data=sio.dumps(hostile(marker))))
    assert version.status == "failed"
    assert expected_type in version.untrusted_types
    assert expected_type in version.status_reason
    assert not marker.exists()


def test_it_refuses_main_module_types_even_when_an_admin_tries_to_trust_them(register, validate, admin_user):
    def to_main(schema):
        schema["content"]["content"]["steps"]["content"][1]["content"][1]["__module__"] = "__main__"

    version = validate(register(data=rewrite_schema(skops_bytes(churn_pipeline()), to_main)))
    assert version.status == "failed"
    assert version.untrusted_types == ["__main__.LogisticRegression"]
    with pytest.raises(services.RegistryError, match="never be trusted"):
        services.trusted_type_add(admin=admin_user, name=version.untrusted_types[0], reason="please")
    with pytest.raises(services.RegistryError, match="Only types from these packages"):
        services.trusted_type_add(admin=admin_user, name="posix.system", reason="please")


def test_it_rejects_an_entry_count_bomb_before_extraction(owner_client, settings):
    settings.ARTIFACT_MAX_ZIP_ENTRIES = 50
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps({"protocol": 2, "__loader__": "ObjectNode"}))
        for i in range(60):
            archive.writestr(f"{i}.npy", b"")
    response = post_version(owner_client, out.getvalue())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "zip_bomb"


def test_it_rejects_a_compression_bomb_before_extraction(owner_client):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", json.dumps({"protocol": 2, "__loader__": "ObjectNode"}))
        archive.writestr("huge.npy", b"\0" * 20_000_000)
    response = post_version(owner_client, out.getvalue())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "zip_bomb"
    assert not ModelVersion.objects.exists()


def test_it_rejects_a_truncated_file(owner_client):
    data = skops_bytes(churn_pipeline())
    response = post_version(owner_client, data[: len(data) // 2])
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("corrupt_artifact", "unsupported_format")


def test_it_answers_413_one_byte_over_the_upload_limit_and_keeps_nothing(owner_client, settings):
    data = skops_bytes(churn_pipeline())
    probe = post_version(owner_client, data)  # measure the exact body size the client sends
    assert probe.status_code == 201
    size = int(probe.wsgi_request.META["CONTENT_LENGTH"])
    before, versions = stored_files(), ModelVersion.objects.count()
    settings.MAX_UPLOAD_BYTES = size - 1
    response = post_version(owner_client, data)  # the same bytes: one byte over the limit
    assert response.status_code == 413
    assert response.json()["error"]["details"]["received_bytes"] == size
    assert stored_files() == before
    assert ModelVersion.objects.count() == versions


def test_it_flags_another_scikit_learn_version_until_an_admin_accepts_it(register, validate, admin_user):
    def older(schema):
        text = json.dumps(schema).replace(f'"\\"{__import__("sklearn").__version__}\\""', '"\\"1.3.0\\""')
        schema.clear()
        schema.update(json.loads(text))

    version = validate(register(data=rewrite_schema(skops_bytes(churn_pipeline()), older)))
    assert version.status == "failed"
    assert version.trained_sklearn_version == "1.3.0"
    assert "1.3.0" in version.status_reason
    assert services.version_accept_sklearn_mismatch(admin=admin_user, version=version)
    assert validate(version).status == "ready"
    assert AuditEvent.objects.filter(action="version.sklearn_mismatch_accepted", actor=admin_user).exists()


def test_it_fails_closed_when_stored_bytes_change(register, validate):
    version = register(data=skops_bytes(churn_pipeline()))  # its own bytes: the stored file is overwritten
    with default_storage.open(version.artifact_key, "wb") as fh:
        fh.write(skops_bytes(churn_pipeline(churn_frame(seed=3))))
    version = validate(version)
    assert version.status == "failed"
    assert version.status_reason == services.MSG_TAMPERED
    assert AuditEvent.objects.filter(action="artifact.tampered", target_id=str(version.pk)).exists()


@pytest.mark.parametrize("name", ["../../etc/passwd", "..%2f..%2fsecret", "/etc/shadow"])
def test_it_never_uses_uploaded_names_as_paths(owner_client, name):
    response = post_version(owner_client, skops_bytes(churn_pipeline()), name=name)
    assert response.status_code == 201
    version = ModelVersion.objects.get()
    assert version.artifact_key == f"artifacts/{version.artifact_sha256[:2]}/{version.artifact_sha256}"
    assert all(Path(settings.MEDIA_ROOT) in p.parents for p in stored_files())


def test_it_runs_an_admin_allowed_pickle_only_in_the_sandbox_without_secrets(register, validate, admin_user, tmp_path):
    services.policy_set_allow_pickle(admin=admin_user, allow=True)
    leak = tmp_path / "env.json"
    payload = pickle.dumps(ExecOnLoad(f"import os, json; open({str(leak)!r}, 'w').write(json.dumps(dict(os.environ)))"))
    version = validate(register(data=payload, fmt="pickle"))
    assert version.status == "failed"  # the payload is not a model
    seen = json.loads(leak.read_text())
    assert seen["OMP_NUM_THREADS"] == "1"  # it really ran, in the sandbox's environment
    assert not {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"} & set(seen)


def test_it_survives_a_model_that_crashes_the_loader(register, validate, admin_user):
    services.policy_set_allow_pickle(admin=admin_user, allow=True)
    version = validate(register(data=pickle.dumps(ExecOnLoad("import os; os.abort()")), fmt="pickle"))
    assert version.status == "failed"
    assert "crashed the validator (signal 6)" in version.status_reason

"""register(): a real scikit-learn model goes out as a safe skops file, with no temp files left."""

from __future__ import annotations

import io
import tempfile

import pytest

from fake_portal import FakePortal
from opsportal_client import Client, OpsPortalError

skops_io = pytest.importorskip("skops.io")
pd = pytest.importorskip("pandas")
linear_model = pytest.importorskip("sklearn.linear_model")


@pytest.fixture
def frame():
    return pd.DataFrame({"tenure": [1.0, 5.0, 2.0, 9.0, 3.0, 8.0], "churned": [1, 0, 1, 0, 1, 0]})


@pytest.fixture
def model(frame):
    return linear_model.LogisticRegression().fit(frame[["tenure"]], frame["churned"])


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point tempfile at an empty folder of our own, so leftovers are visible."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_it_uploads_a_skops_file_with_no_untrusted_types(portal: FakePortal, client: Client, model, frame, tmp_path):
    client.register(model, name="churn")
    filename, data, _ = portal.uploads[-1].files["artifact"]
    received = tmp_path / filename
    received.write_bytes(data)
    assert filename == "churn.skops"
    assert portal.uploads[-1].fields["format"] == "skops"
    assert skops_io.get_untrusted_types(file=received) == []
    loaded = skops_io.load(received, trusted=[])
    assert list(loaded.predict(frame[["tenure"]])) == list(model.predict(frame[["tenure"]]))


def test_it_creates_the_model_with_the_inferred_task(portal: FakePortal, client: Client, model) -> None:
    client.register(model, name="churn")
    assert portal.models["churn"]["task"] == "binary_classification"


def test_it_sends_the_reference_frame_as_parquet(portal: FakePortal, client: Client, model, frame) -> None:
    client.register(model, name="churn", reference=frame, target_column="churned", metrics={"auc": 1.0})
    upload = portal.uploads[-1]
    filename, data, _ = upload.files["reference_data"]
    assert filename == "reference.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(data)), frame)
    assert (upload.fields["target_column"], upload.fields["metrics"]) == ("churned", '{"auc": 1.0}')


def test_it_returns_the_validated_version_when_waiting(client: Client, model) -> None:
    version = client.register(model, name="churn")
    assert (version["number"], version["status"]) == (1, "ready")


def test_it_returns_the_submitted_version_without_waiting(portal: FakePortal, client: Client, model) -> None:
    assert client.register(model, name="churn", wait=False)["status"] == "validating"
    assert portal.polls == {}


def test_it_removes_its_temp_files_after_registering(client: Client, model, frame, private_tmp) -> None:
    client.register(model, name="churn", reference=frame)
    assert list(private_tmp.iterdir()) == []


def test_it_removes_its_temp_files_when_the_server_refuses(portal: FakePortal, model, frame, private_tmp) -> None:
    refused = Client(portal.url, "opk_wrong", progress=False)
    with pytest.raises(OpsPortalError, match="HTTP 401"):
        refused.register(model, name="churn", reference=frame)
    assert list(private_tmp.iterdir()) == []


def test_it_rejects_a_target_column_missing_from_the_reference(portal: FakePortal, client: Client, model, frame):
    with pytest.raises(ValueError, match="not a column"):
        client.register(model, name="churn", reference=frame, target_column="label")
    assert portal.uploads == []

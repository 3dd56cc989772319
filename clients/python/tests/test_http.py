"""Client behaviour against the fake server: models, uploads, validation polling, errors."""

from __future__ import annotations

import json
import os

import pytest

from fake_portal import PASSWORD, TOKEN, USERNAME, FakePortal, Outcome
from opsportal_client import Client, OpsPortalError, ValidationFailed
from opsportal_client import client as client_module


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "model.skops"
    # Random bytes with CR/LF and boundary-like runs: any re-encoding on the way would show.
    path.write_bytes(os.urandom(300_000) + b"\r\n--\r\n\x00")
    return path


def test_it_gets_a_model(portal: FakePortal, client: Client) -> None:
    portal.add_model("churn")
    assert client.get_model("churn")["task"] == "binary_classification"


def test_it_raises_not_found_for_a_missing_model(client: Client) -> None:
    with pytest.raises(OpsPortalError) as caught:
        client.get_model("nope")
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_it_raises_the_servers_401_for_a_bad_token(portal: FakePortal) -> None:
    with pytest.raises(OpsPortalError) as caught:
        Client(portal.url, "opk_wrong", progress=False).get_model("churn")
    assert (caught.value.status, caught.value.code) == (401, "not_authenticated")
    assert caught.value.message == "Invalid or missing API token."


def test_it_raises_conflict_when_the_model_name_exists(portal: FakePortal, client: Client) -> None:
    portal.add_model("churn")
    with pytest.raises(OpsPortalError) as caught:
        client.create_model("churn", "binary_classification")
    assert (caught.value.status, caught.value.code) == (409, "conflict")


def test_it_creates_a_missing_model_on_ensure(portal: FakePortal, client: Client) -> None:
    model = client.ensure_model("churn", "regression", title="Churn", tags=["crm"])
    assert (model["task"], model["tags"], portal.created) == ("regression", ["crm"], ["churn"])


def test_it_keeps_an_existing_model_on_ensure(portal: FakePortal, client: Client) -> None:
    portal.add_model("churn")
    assert client.ensure_model("churn", "binary_classification")["name"] == "churn"
    assert portal.created == []


def test_it_logs_in_and_returns_a_client_with_the_token(portal: FakePortal) -> None:
    logged_in = Client.login(portal.url, USERNAME, PASSWORD, progress=False)
    portal.add_model("churn")
    assert logged_in.token == TOKEN
    assert logged_in.get_model("churn")["name"] == "churn"


def test_it_uploads_the_exact_artifact_bytes_and_fields(portal: FakePortal, client: Client, artifact, tmp_path) -> None:
    portal.add_model("churn")
    reference = tmp_path / "ref.csv"
    reference.write_text("x0,churned\n1.5,1\n")
    version = client.upload_version(
        "churn", artifact, reference_path=reference, target_column="churned", metrics={"auc": 0.9},
        params={"C": 1.0}, description="first", intended_use="retention", source_code_ref="abc123",
        training_data_description="2024 customers",
    )  # fmt: skip
    upload = portal.uploads[-1]
    assert (version["number"], version["status"], version["model"]) == (1, "validating", "churn")
    assert upload.files["artifact"] == ("model.skops", artifact.read_bytes(), "application/octet-stream")
    assert upload.files["reference_data"] == ("ref.csv", reference.read_bytes(), "text/csv")
    assert upload.fields == {
        "format": "skops", "target_column": "churned", "metrics": '{"auc": 0.9}', "params": '{"C": 1.0}',
        "description": "first", "intended_use": "retention", "source_code_ref": "abc123",
        "training_data_description": "2024 customers",
    }  # fmt: skip


def test_it_leaves_unset_fields_out_of_the_upload(portal: FakePortal, client: Client, artifact) -> None:
    portal.add_model("churn")
    client.upload_version("churn", artifact, format="onnx")
    assert portal.uploads[-1].fields == {"format": "onnx"}
    assert set(portal.uploads[-1].files) == {"artifact"}


def test_it_streams_the_upload_with_a_byte_progress_bar(portal: FakePortal, artifact, monkeypatch) -> None:
    bars: list[RecordingBar] = []
    monkeypatch.setattr(client_module, "tqdm", lambda **kwargs: RecordingBar(bars, kwargs))
    portal.add_model("churn")
    Client(portal.url, TOKEN, progress=True).upload_version("churn", artifact)
    (bar,) = bars
    upload = portal.uploads[-1]
    # A known length up front (not chunked) and many small reads: streamed, not buffered whole.
    assert upload.headers["Content-Length"] == str(upload.body_length) == str(bar.kwargs["total"])
    assert "Transfer-Encoding" not in upload.headers
    assert sum(bar.updates) == bar.kwargs["total"]
    assert len(bar.updates) > 5
    assert (bar.kwargs["disable"], bar.kwargs["unit"]) == (False, "B")


def test_it_raises_duplicate_artifact_with_the_existing_version(portal: FakePortal, client: Client, artifact) -> None:
    portal.add_model("churn")
    client.upload_version("churn", artifact)
    with pytest.raises(OpsPortalError) as caught:
        client.upload_version("churn", artifact)
    assert (caught.value.status, caught.value.code, caught.value.details) == (409, "duplicate_artifact", {"version": 1})


def test_it_waits_until_ready_after_two_validating_polls(portal: FakePortal, client: Client, artifact) -> None:
    portal.add_model("churn")
    portal.outcome = Outcome("ready", polls=2)
    client.upload_version("churn", artifact)
    version = client.wait_for_validation("churn", 1, poll=0.01)
    assert (version["status"], version["engine"]["name"]) == ("ready", "sklearn")
    assert portal.polls[("churn", 1)] == 3


def test_it_raises_validation_failed_with_the_servers_reason(portal: FakePortal, client: Client, artifact) -> None:
    portal.add_model("churn")
    portal.outcome = Outcome("failed", polls=1, reason="predict() raised ValueError on the reference data")
    client.upload_version("churn", artifact)
    with pytest.raises(ValidationFailed, match="predict\\(\\) raised ValueError") as caught:
        client.wait_for_validation("churn", 1, poll=0.01)
    assert caught.value.version["status"] == "failed"


def test_it_times_out_while_the_version_is_still_validating(portal: FakePortal, client: Client, artifact) -> None:
    portal.add_model("churn")
    portal.outcome = Outcome("ready", polls=1000)
    client.upload_version("churn", artifact)
    with pytest.raises(TimeoutError, match="still validating"):
        client.wait_for_validation("churn", 1, timeout=0.1, poll=0.02)


def test_it_sends_metrics_as_a_json_object_string(portal: FakePortal, client: Client, artifact) -> None:
    portal.add_model("churn")
    client.upload_version("churn", artifact, metrics={"auc": 0.91, "by_segment": {"a": 0.8}})
    assert json.loads(portal.uploads[-1].fields["metrics"]) == {"auc": 0.91, "by_segment": {"a": 0.8}}


class RecordingBar:
    """Stands in for tqdm: records what the upload told its progress bar."""

    def __init__(self, bars: list[RecordingBar], kwargs: dict[str, object]) -> None:
        self.kwargs, self.n, self.updates = kwargs, 0, []
        bars.append(self)

    def update(self, amount: int) -> None:
        self.updates.append(amount)
        self.n += amount

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

"""The `opsportal` command against the fake server: output and exit codes."""

from __future__ import annotations

import pytest

from fake_portal import PASSWORD, TOKEN, FakePortal, Outcome
from opsportal_client import cli


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "churn.skops"
    path.write_bytes(b"not really skops, the fake server does not care")
    return path


def run(portal: FakePortal, *args: str) -> int:
    return cli.main(["--url", portal.url, "--token", TOKEN, "--no-progress", *args])


def test_it_exits_0_and_shows_the_engine_when_push_ends_ready(portal: FakePortal, model_file, capsys) -> None:
    code = run(portal, "push", str(model_file), "--name", "churn", "--task", "binary_classification")
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == ["Registered churn version 1: ready", "Engine: sklearn 1.9.1"]


def test_it_exits_0_right_after_submitting_with_no_wait(portal: FakePortal, model_file, capsys) -> None:
    portal.add_model("churn")
    portal.outcome = Outcome("failed", reason="never polled")
    assert run(portal, "push", str(model_file), "--name", "churn", "--no-wait") == 0
    assert capsys.readouterr().out == "Registered churn version 1: validating\n"
    assert portal.polls == {}


def test_it_exits_1_and_prints_the_reason_when_validation_fails(portal: FakePortal, model_file, capsys) -> None:
    portal.add_model("churn")
    portal.outcome = Outcome("failed", reason="signature does not match the reference data")
    assert run(portal, "push", str(model_file), "--name", "churn") == 1
    out = capsys.readouterr().out
    assert "Registered churn version 1: failed" in out
    assert "Reason: signature does not match the reference data" in out


def test_it_exits_2_and_prints_the_server_message_on_an_http_error(portal: FakePortal, model_file, capsys) -> None:
    code = cli.main(["--url", portal.url, "--token", "opk_wrong", "push", str(model_file), "--name", "churn"])
    assert code == 2
    assert "Invalid or missing API token. (HTTP 401, not_authenticated)" in capsys.readouterr().err


def test_it_exits_2_on_a_duplicate_artifact_and_names_the_version(portal: FakePortal, model_file, capsys) -> None:
    portal.add_model("churn")
    run(portal, "push", str(model_file), "--name", "churn", "--no-wait")
    assert run(portal, "push", str(model_file), "--name", "churn") == 2
    assert "already version 1" in capsys.readouterr().err


def test_it_exits_2_on_a_usage_error(portal: FakePortal, model_file) -> None:
    assert run(portal, "push", str(model_file)) == 2  # --name is required


def test_it_exits_2_when_the_model_file_is_missing(portal: FakePortal, tmp_path, capsys) -> None:
    assert run(portal, "push", str(tmp_path / "gone.skops"), "--name", "churn") == 2
    assert "no such model file" in capsys.readouterr().err


def test_it_exits_2_when_the_extension_does_not_tell_the_format(portal: FakePortal, tmp_path, capsys) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"x")
    assert run(portal, "push", str(path), "--name", "churn") == 2
    assert "explicitly" in capsys.readouterr().err


def test_it_asks_for_task_when_the_model_does_not_exist(portal: FakePortal, model_file, capsys) -> None:
    assert run(portal, "push", str(model_file), "--name", "churn") == 2
    assert "pass --task" in capsys.readouterr().err


def test_it_exits_2_without_a_token(portal: FakePortal, monkeypatch, capsys) -> None:
    monkeypatch.delenv("OPSPORTAL_TOKEN", raising=False)
    assert cli.main(["--url", portal.url, "status", "churn"]) == 2
    assert "opsportal login" in capsys.readouterr().err


def test_it_exits_3_when_validation_outlasts_the_wait(portal: FakePortal, model_file) -> None:
    portal.add_model("churn")
    portal.outcome = Outcome("ready", polls=1000)
    assert run(portal, "push", str(model_file), "--name", "churn", "--wait-timeout", "0") == 3


def test_it_sends_metrics_from_an_at_file_and_the_explicit_format(portal: FakePortal, model_file, tmp_path) -> None:
    portal.add_model("churn")
    (tmp_path / "m.json").write_text('{"auc": 0.91}')
    run(portal, "push", str(model_file), "--name", "churn", "--format", "onnx", "--metrics", f"@{tmp_path / 'm.json'}")
    assert portal.uploads[-1].fields == {"format": "onnx", "metrics": '{"auc": 0.91}'}


def test_it_shows_a_version_status(portal: FakePortal, model_file, capsys) -> None:
    portal.add_model("churn")
    portal.outcome = Outcome("failed", reason="bad input")
    run(portal, "push", str(model_file), "--name", "churn")
    capsys.readouterr()
    assert run(portal, "status", "churn", "1") == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["churn version 1: failed", "Reason: bad input"]


def test_it_shows_a_model_with_its_versions(portal: FakePortal, model_file, capsys) -> None:
    portal.add_model("churn")
    run(portal, "push", str(model_file), "--name", "churn", "--no-wait")
    capsys.readouterr()
    assert run(portal, "status", "churn") == 0
    assert capsys.readouterr().out.splitlines() == [
        "churn - Churn",
        "Task: binary_classification",
        "Versions:",
        "     1  validating",
    ]


def test_it_reads_url_and_token_from_the_environment(portal: FakePortal, monkeypatch, capsys) -> None:
    portal.add_model("churn")
    monkeypatch.setenv("OPSPORTAL_URL", portal.url)
    monkeypatch.setenv("OPSPORTAL_TOKEN", TOKEN)
    assert cli.main(["status", "churn", "--json"]) == 0
    assert '"name": "churn"' in capsys.readouterr().out


def test_it_accepts_connection_options_after_the_subcommand(portal: FakePortal) -> None:
    portal.add_model("churn")
    assert cli.main(["status", "churn", "--url", portal.url, "--token", TOKEN]) == 0


def test_it_logs_in_and_prints_how_to_export_the_token(portal: FakePortal, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: PASSWORD)
    assert cli.main(["--url", portal.url, "login", "--username", "dana"]) == 0
    out = capsys.readouterr().out
    assert TOKEN in out.splitlines()[0]
    assert f"export OPSPORTAL_TOKEN={TOKEN}" in out
    assert f"export OPSPORTAL_URL={portal.url}" in out


def test_it_exits_2_on_wrong_login_credentials(portal: FakePortal, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: "wrong")
    assert cli.main(["--url", portal.url, "login", "--username", "dana"]) == 2
    assert "Wrong username or password." in capsys.readouterr().err

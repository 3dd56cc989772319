"""Behaviour that needs no server: task inference, formats, JSON options, error mapping."""

from __future__ import annotations

import argparse
import json
import socket

import pytest

from opsportal_client import Client, OpsPortalConnectionError, OpsPortalError, ValidationFailed, format_for_path
from opsportal_client.cli import parse_json_object
from opsportal_client.client import error_from_body, infer_task

sklearn_linear = pytest.importorskip("sklearn.linear_model")


def fitted_classifier(n_classes: int) -> object:
    x = [[float(i)] for i in range(12)]
    y = [i % n_classes for i in range(12)]
    return sklearn_linear.LogisticRegression().fit(x, y)


def test_it_infers_binary_classification_from_two_classes() -> None:
    assert infer_task(fitted_classifier(2)) == "binary_classification"


def test_it_infers_multiclass_classification_from_three_classes() -> None:
    assert infer_task(fitted_classifier(3)) == "multiclass_classification"


def test_it_infers_regression_for_a_regressor() -> None:
    assert infer_task(sklearn_linear.LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])) == "regression"


def test_it_refuses_to_infer_the_task_of_an_unfitted_classifier() -> None:
    with pytest.raises(ValueError, match="fit it"):
        infer_task(sklearn_linear.LogisticRegression())


@pytest.mark.parametrize(("filename", "expected"), [("m.skops", "skops"), ("m.onnx", "onnx"), ("M.ONNX", "onnx")])
def test_it_takes_the_format_from_the_extension(filename: str, expected: str) -> None:
    assert format_for_path(filename) == expected


@pytest.mark.parametrize("filename", ["model.pkl", "model.joblib"])
def test_it_never_guesses_pickle_from_the_extension(filename: str) -> None:
    with pytest.raises(ValueError, match="explicitly"):
        format_for_path(filename)


def test_it_refuses_an_unknown_extension() -> None:
    with pytest.raises(ValueError, match="cannot tell the format"):
        format_for_path("model.bin")


def test_it_parses_inline_metrics_json() -> None:
    assert parse_json_object('{"auc": 0.91}') == {"auc": 0.91}


def test_it_reads_metrics_from_an_at_file(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"auc": 0.91, "f1": 0.8}))
    assert parse_json_object(f"@{path}") == {"auc": 0.91, "f1": 0.8}


def test_it_reports_a_missing_at_file_as_a_usage_error(tmp_path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read"):
        parse_json_object(f"@{tmp_path / 'nope.json'}")


@pytest.mark.parametrize("text", ["[1, 2]", "0.9", "{not json"])
def test_it_rejects_metrics_that_are_not_a_json_object(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_json_object(text)


def test_it_maps_the_json_error_body_to_an_opsportal_error() -> None:
    body = b'{"error": {"code": "duplicate_artifact", "message": "Already there.", "details": {"version": 3}}}'
    exc = error_from_body(409, body, "Conflict")
    assert (exc.status, exc.code, exc.message, exc.details) == (
        409,
        "duplicate_artifact",
        "Already there.",
        {"version": 3},
    )


def test_it_maps_a_non_json_error_body_to_a_generic_code() -> None:
    exc = error_from_body(502, b"<html>Bad Gateway</html>", "Bad Gateway")
    assert (exc.code, exc.message) == ("http_502", "Bad Gateway")


def test_it_says_message_status_and_code_in_the_error_text() -> None:
    assert (
        str(OpsPortalError(404, "not_found", "No model named churn.")) == "No model named churn. (HTTP 404, not_found)"
    )


def test_it_puts_the_server_reason_in_validation_failed() -> None:
    exc = ValidationFailed({"model": "churn", "number": 2, "status": "failed", "status_reason": "predict() raised"})
    assert str(exc) == "churn version 2 failed validation: predict() raised"


def test_it_raises_a_helpful_connection_error_when_nothing_listens() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, so nothing answers on it
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(OpsPortalConnectionError, match="is the server running"):
        Client(url, "opk_x", timeout=5).get_model("churn")


def test_it_never_shows_the_token_in_the_repr() -> None:
    assert "opk_secret" not in repr(Client("http://127.0.0.1:1", "opk_secret"))

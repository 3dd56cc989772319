"""The test harness keeps parallel test processes apart."""

from __future__ import annotations

import os

import pytest

from opsportal import testenv


def test_each_parallel_test_process_gets_its_own_var_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSPORTAL_VAR_DIR", "/tmp/opsportal-run")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    testenv._own_var_dir()
    assert os.environ["OPSPORTAL_VAR_DIR"] == "/tmp/opsportal-run/gw1"


def test_a_single_test_process_keeps_the_run_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSPORTAL_VAR_DIR", "/tmp/opsportal-run")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    testenv._own_var_dir()
    assert os.environ["OPSPORTAL_VAR_DIR"] == "/tmp/opsportal-run"

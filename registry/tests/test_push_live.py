"""A data scientist pushes a model from Python and from the command line to a running portal,
and a real worker validates it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import skops.io as sio
from opsportal_client import Client

from accounts.services import token_create
from registry.models import ModelVersion
from registry.tests.fixtures import churn_frame, churn_pipeline

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def token(data_scientist) -> str:
    return token_create(user=data_scientist, name="notebook", expires_in_days=1)[1]


def test_it_registers_a_model_from_python_and_waits_for_validation(celery_worker_process, live_server, token):
    client = Client(live_server.url, token, progress=False)
    version = client.register(churn_pipeline(), name="churn", reference=churn_frame(), target_column="Churn",
                              metrics={"auc": 0.83}, timeout=180)
    assert version["status"] == "ready", version["status_reason"]
    assert version["engine"] == "onnx"
    assert version["metrics"] == {"auc": 0.83}
    assert ModelVersion.objects.get().model.task == "binary_classification"


def test_it_pushes_a_file_with_the_cli(celery_worker_process, live_server, token, tmp_path: Path):
    model_path, reference_path = tmp_path / "churn.skops", tmp_path / "ref.parquet"
    sio.dump(churn_pipeline(), model_path)
    churn_frame().to_parquet(reference_path)
    result = subprocess.run(
        [sys.executable, "-m", "opsportal_client.cli", "push", str(model_path), "--name", "churn",
         "--task", "binary_classification", "--reference", str(reference_path), "--target", "Churn", "--no-progress"],
        env={**os.environ, "OPSPORTAL_URL": live_server.url, "OPSPORTAL_TOKEN": token},
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Registered churn version 1: ready" in result.stdout

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from opsportal import env

PRODUCTION = {
    "DEBUG": "false",
    "HTTPS": "true",
    "SECRET_KEY": "k" * 20 + "Zq8#vLp2@xW!r5Tn%yB3$mC7&dF1^hJ4*sG6",
    "ALLOWED_HOSTS": "portal.example.com",
}


def manage(tmp_path: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
        env={**clean, "OPSPORTAL_VAR_DIR": str(tmp_path), **environ},
    )


@pytest.mark.parametrize(
    ("reader", "value"),
    [(lambda: env.env_bool("X_TEST", False), "maybe"), (lambda: env.env_int("X_TEST", 1), "ten")],
)
def test_it_fails_loudly_on_a_bad_value(monkeypatch, reader, value):
    monkeypatch.setenv("X_TEST", value)
    with pytest.raises(ImproperlyConfigured, match="X_TEST"):
        reader()


def test_it_passes_check_deploy_with_the_documented_production_variables(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("override", [{"DEBUG": "true"}, {"SECRET_KEY": "short"}, {"HTTPS": "false"}])
def test_it_fails_check_deploy_with_unsafe_production_settings(tmp_path, override):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, **override})
    assert result.returncode != 0


def test_it_refuses_an_unknown_variable_in_the_env_file(tmp_path):
    (tmp_path / ".env").write_text("DATBASE_URL=postgres://x\n")
    env._DOTENV.clear()
    try:
        env.load_dotenv_file(tmp_path / ".env")
        with pytest.raises(ImproperlyConfigured, match="DATBASE_URL"):
            env.reject_unknown_dotenv_keys()
    finally:
        env._DOTENV.clear()


def test_it_generates_a_secret_key_once_and_keeps_it_private(tmp_path):
    first = manage(tmp_path, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)")
    second = manage(tmp_path, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)")
    assert first.stdout == second.stdout and len(first.stdout.strip()) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_it_refuses_time_limits_above_the_visibility_timeout(tmp_path):
    result = manage(
        tmp_path, "check", CELERY_BROKER_URL="redis://127.0.0.1:6379/0", CELERY_VISIBILITY_TIMEOUT="600",
        CELERY_TASK_TIME_LIMIT="660",
    )
    assert result.returncode != 0
    assert "CELERY_VISIBILITY_TIMEOUT" in result.stderr


def test_it_keeps_every_time_limit_below_the_redis_visibility_timeout():
    visibility = 7200  # the default CELERY_VISIBILITY_TIMEOUT
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT < visibility
    assert visibility > settings.CELERY_TRAINING_TIME_LIMIT



def test_it_documents_every_variable_it_reads_in_env_example():
    documented = set(env.dotenv_values(settings.BASE_DIR / ".env.example"))
    read = {name for name in env.KNOWN if not name.startswith("X_TEST")}
    assert documented == read


def test_it_stores_artifacts_on_s3_when_configured(tmp_path):
    result = manage(
        tmp_path, "shell", "-c",
        "from django.core.files.storage import storages; s = storages['default']; "
        "print(type(s).__name__, s.bucket_name)",
        ARTIFACT_STORAGE="s3", S3_BUCKET="models", S3_ENDPOINT_URL="http://127.0.0.1:9000",
    )
    assert result.stdout.strip().splitlines()[-1].split() == ["S3Storage", "models"], result.stderr
    refused = manage(tmp_path, "check", ARTIFACT_STORAGE="s3")
    assert "S3_BUCKET" in refused.stderr

"""Runs in the portal's venv, in the throwaway OPSPORTAL_VAR_DIR: register, validate and promote the
Telco churn pipeline through the real services, then create an API token.

    DJANGO_SETTINGS_MODULE=opsportal.settings OPSPORTAL_VAR_DIR=... python _portal_setup.py \
        <model.skops> <reference.csv> <out.json>

Writes {"token", "model", "version", "engine", "stage", "timings_s", ...} to out.json. The
database must be migrated already (`manage.py migrate`, run by realtime.py just before).
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEAM = "data-science"


def main(artifact_path: str, reference_path: str, out_path: str) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.models import Team
    from accounts.services import token_create
    from opsportal.roles import Role
    from registry import promotions, services

    timings: dict[str, float] = {}
    if not str(settings.VAR_DIR).startswith(str(Path(__file__).resolve().parent.parent / "var" / "bench")):
        raise SystemExit(f"refusing to set up a benchmark portal in {settings.VAR_DIR}: not under var/bench")
    wanted = {str(Role.DATA_SCIENTIST), str(Role.APPROVER)}
    groups = {g.name: g for g in Group.objects.filter(name__in=wanted)}
    if set(groups) != wanted:
        raise SystemExit(f"role groups missing after migrate: {sorted(wanted - set(groups))}")
    team, _ = Team.objects.get_or_create(slug=TEAM, defaults={"name": "Data science"})
    author = User.objects.create_user("bench-author", password=secrets.token_urlsafe(24))
    author.groups.set([groups[str(Role.DATA_SCIENTIST)], groups[str(Role.APPROVER)]])
    approver = User.objects.create_user("bench-approver", password=secrets.token_urlsafe(24))
    approver.groups.set([groups[str(Role.APPROVER)]])
    team.members.add(author, approver)

    started = time.perf_counter()
    model = services.model_create(user=author, name="churn", task="binary_classification", team=TEAM,
                                  title="Telco customer churn (benchmark)")
    upload = services.VersionUpload(
        artifact=SimpleUploadedFile("telco_churn.skops", Path(artifact_path).read_bytes(),
                                    content_type="application/octet-stream"),
        format="skops",
        reference=SimpleUploadedFile("ref.csv", Path(reference_path).read_bytes(), content_type="text/csv"),
        target_column="Churn",
        description="Logistic regression on the IBM Telco churn table (imputed, scaled, one-hot encoded).",
        intended_use="Benchmark of real-time scoring; not a business model.",
    )
    version = services.version_register(model=model, user=author, upload=upload)
    timings["register"] = time.perf_counter() - started

    started = time.perf_counter()
    services.version_validate(version_id=version.pk)  # what the worker runs, inline
    version.refresh_from_db()
    timings["validate"] = time.perf_counter() - started
    if version.status != "ready":
        raise SystemExit(f"validation did not pass: {version.status}: {version.status_reason}")

    started = time.perf_counter()
    request = promotions.promotion_open(version=version, user=author, target="production",
                                        justification="Benchmark setup.")
    promotions.promotion_gates_evaluate(request_id=request.pk)
    decided = promotions.promotion_decide(request=request, user=approver, decision="approve", comment="Benchmark.")
    version.refresh_from_db()
    timings["promote"] = time.perf_counter() - started
    if version.stage != "production":
        raise SystemExit(f"promotion did not complete: request {decided.status}, gates {decided.gates_status}: "
                         f"{json.dumps(decided.gate_results, default=str)[:2000]}")

    _, raw = token_create(user=author, name="benchmark", expires_in_days=1)
    single = version.validation.get("single_row_ms") if isinstance(version.validation, dict) else None
    Path(out_path).write_text(json.dumps({
        "token": raw, "model": model.name, "version": version.number, "engine": version.engine,
        "stage": version.stage, "timings_s": timings, "validation_single_row_ms": single,
        "onnx_timings": (version.validation or {}).get("onnx_timings"),
    }, default=str))
    print(f"churn v{version.number} in {version.stage}, engine {version.engine}; timings {timings}")


if __name__ == "__main__":
    main(*sys.argv[1:4])

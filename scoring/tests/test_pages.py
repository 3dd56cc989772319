"""Scoring pages: batch jobs (visibility, create, progress, downloads, cancel) and real-time traffic settings."""

from __future__ import annotations

import pytest
from django.utils.html import escape

from accounts.models import AuditEvent
from registry.tests.fixtures import churn_frame, csv_bytes, upload
from scoring import batch
from scoring.forms import MSG_NUMBER_NEEDED
from scoring.models import ScoringChunk, ScoringConfig, ScoringJob

pytestmark = pytest.mark.django_db


def scoring_file(rows=1200):
    frame = churn_frame(rows=rows, seed=42).drop(columns=["Churn"])
    frame.insert(0, "customer_id", [f"c{i}" for i in range(rows)])
    return frame


def post_job(client, user, frame=None, name="in.csv", **fields):
    client.force_login(user)
    data = csv_bytes(scoring_file() if frame is None else frame)
    form = {"model": "churn", "version": "number", "number": 1, "id_column": "customer_id", "chunk_size": 500,
            "max_error_rate": 5, "file": upload(data, name), **fields}
    return client.post("/scoring/new/", form)


def make_job(version, user, name="in.csv"):
    return batch.job_create(model=version.model, version=version, user=user,
                            upload=upload(csv_bytes(scoring_file()), name), chunk_size=500)


def run(job, chunks=None):
    batch.job_plan(job_id=job.pk)
    for chunk in ScoringChunk.objects.filter(job=job).order_by("index")[:chunks]:
        batch.chunk_run(chunk_id=chunk.pk)


def test_it_lists_the_jobs_of_the_users_models(client, ready_version, data_scientist):
    job = make_job(ready_version, data_scientist)
    client.force_login(data_scientist)
    assert f'href="/scoring/{job.pk}/"' in client.get("/scoring/").content.decode()


def test_it_hides_other_teams_jobs_from_the_list(client, ready_version, data_scientist, other_data_scientist):
    make_job(ready_version, data_scientist)
    client.force_login(other_data_scientist)
    html = client.get("/scoring/").content.decode()
    assert 'data-testid="job-row"' not in html
    assert 'data-testid="empty-jobs"' in html


def test_it_answers_404_for_another_teams_job(client, ready_version, data_scientist, other_data_scientist):
    job = make_job(ready_version, data_scientist)
    client.force_login(other_data_scientist)
    assert client.get(f"/scoring/{job.pk}/").status_code == 404


def test_it_creates_a_job_and_redirects_to_it(client, ready_version, data_scientist):
    response = post_job(client, data_scientist)
    job = ScoringJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/scoring/{job.pk}/"
    assert (job.version, job.id_column, job.chunk_size, job.max_error_rate) == (ready_version, "customer_id", 500, 0.05)


def test_it_shows_100_percent_and_the_downloads_when_done(client, ready_version, data_scientist):
    post_job(client, data_scientist)
    job = ScoringJob.objects.get()
    run(job)
    html = client.get(f"/scoring/{job.pk}/").content.decode()
    assert "(100%)" in html and "hx-get" not in html
    assert f'href="/api/v1/scoring-jobs/{job.pk}/result"' in html
    assert f'href="/api/v1/scoring-jobs/{job.pk}/result?format=parquet"' in html
    assert client.get(f"/api/v1/scoring-jobs/{job.pk}/result").status_code == 200
    parquet = client.get(f"/api/v1/scoring-jobs/{job.pk}/result?format=parquet")
    assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"


def test_it_shows_the_percent_mid_job(client, ready_version, data_scientist):
    job = make_job(ready_version, data_scientist)
    run(job, chunks=1)
    client.force_login(data_scientist)
    html = client.get(f"/scoring/{job.pk}/progress/").content.decode()
    assert 'aria-valuenow="500"' in html and 'aria-valuemax="1200"' in html
    assert "41.7%" in html and 'hx-trigger="every 2s"' in html


def test_it_reloads_the_page_when_the_job_finishes(client, ready_version, data_scientist):
    job = make_job(ready_version, data_scientist)
    run(job)
    client.force_login(data_scientist)
    assert client.get(f"/scoring/{job.pk}/progress/", headers={"HX-Request": "true"})["HX-Refresh"] == "true"


def test_it_shows_the_missing_columns_message(client, ready_version, data_scientist):
    response = post_job(client, data_scientist, scoring_file().drop(columns=["Contract"]))
    assert response.status_code == 400
    assert batch.MSG_MISSING_COLUMNS.format(columns="Contract") in response.content.decode()
    assert not ScoringJob.objects.exists()


def test_it_asks_for_the_number_of_a_specific_version(client, ready_version, data_scientist):
    response = post_job(client, data_scientist, number="")
    assert response.status_code == 400
    assert escape(MSG_NUMBER_NEEDED) in response.content.decode()


def test_it_cancels_a_running_job(client, ready_version, data_scientist):
    job = make_job(ready_version, data_scientist)
    batch.job_plan(job_id=job.pk)
    client.force_login(data_scientist)
    response = client.post(f"/scoring/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert f"Batch job #{job.pk} cancelled" in response.content.decode()


def test_it_escapes_html_in_a_file_name(client, ready_version, data_scientist):
    post_job(client, data_scientist, name="<img src=x onerror=alert(1)>.csv")
    html = client.get("/scoring/").content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in html


def test_it_forbids_business_owners_to_route_traffic(client, ready_version, business_owner):
    client.force_login(business_owner)
    response = client.post("/scoring/models/churn/traffic/", {"challenger_mode": "canary", "canary_percent": 20})
    assert response.status_code == 403
    assert not ScoringConfig.objects.exists()


def test_it_sets_a_canary_and_audits_it(client, ready_version, approver):
    client.force_login(approver)
    response = client.post("/scoring/models/churn/traffic/", {"challenger_mode": "canary", "canary_percent": 20})
    assert response.status_code == 302
    config = ScoringConfig.objects.get()
    assert (config.challenger_mode, config.canary_percent) == ("canary", 20)
    event = AuditEvent.objects.get(action="scoring.challenger_mode_set")
    assert event.actor == approver and event.payload["after"] == {"mode": "canary", "canary_percent": 20}

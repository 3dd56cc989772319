"""Batch scoring, chunk by chunk, as the worker runs it: every row exactly once, errors per row."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from registry.tests.fixtures import CATEGORICAL, NUMERIC, churn_frame, churn_pipeline, csv_bytes, upload
from scoring import batch
from scoring.models import ScoringChunk, ScoringJob

pytestmark = pytest.mark.django_db


def scoring_file(rows=1200, bad_rows=()):
    frame = churn_frame(rows=rows, seed=42).drop(columns=["Churn"]).astype(object)
    frame.insert(0, "customer_id", [f"c{i}" for i in range(rows)])
    for row in bad_rows:
        frame.loc[row, "tenure"] = "abc"
    return frame


def run_job(version, user, frame, **options):
    job = batch.job_create(model=version.model, version=version, user=user, upload=upload(csv_bytes(frame), "in.csv"),
                           id_column="customer_id", chunk_size=500, **options)
    batch.job_plan(job_id=job.pk)
    for chunk in ScoringChunk.objects.filter(job=job):
        batch.chunk_run(chunk_id=chunk.pk)
    job.refresh_from_db()
    return job


def read_csv(job, **options):
    return list(csv.DictReader(io.StringIO("".join(batch.results_csv(job, **options)))))


def test_it_scores_every_row_once_with_the_models_own_numbers(ready_version, data_scientist):
    frame = scoring_file()
    job = run_job(ready_version, data_scientist, frame)
    assert (job.status, job.total_rows, job.rows_done, job.rows_failed) == ("succeeded", 1200, 1200, 0)
    rows = read_csv(job)
    assert [int(r["row"]) for r in rows] == list(range(1200))
    expected = churn_pipeline().predict_proba(frame[NUMERIC + CATEGORICAL].astype({c: float for c in NUMERIC}))[:, 1]
    assert np.allclose([float(r["probability_Yes"]) for r in rows], expected, atol=1e-5)
    assert rows[7]["id"] == "c7" and rows[7]["model_version"] == "1"


def test_it_reports_bad_rows_and_scores_the_good_ones(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(bad_rows=(3, 700)))
    assert (job.status, job.rows_done, job.rows_failed) == ("partial", 1198, 2)
    errors = read_csv(job, errors_only=True)
    assert [(e["row"], e["error"]) for e in errors] == [("3", "tenure: expected a number, got 'abc'"),
                                                        ("700", "tenure: expected a number, got 'abc'")]
    assert len(read_csv(job)) == 1198


def test_it_fails_a_job_above_its_error_rate(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=200, bad_rows=range(20)), max_error_rate=0.05)
    assert job.status == "failed"
    assert "20 of 200 rows" in job.status_reason


def test_a_chunk_run_twice_writes_its_rows_once(ready_version, data_scientist):
    job = batch.job_create(model=ready_version.model, version=ready_version, user=data_scientist,
                           upload=upload(csv_bytes(scoring_file()), "in.csv"), id_column="customer_id", chunk_size=500)
    batch.job_plan(job_id=job.pk)
    chunks = list(ScoringChunk.objects.filter(job=job).order_by("index"))
    late = batch._claim(chunks[0].pk)  # the first delivery stalls after its claim...
    late_scored, _ = batch._score_chunk(late.job, late)
    for chunk in chunks:  # ...its message comes back and a second execution finishes the job
        batch.chunk_run(chunk_id=chunk.pk)
    batch.chunk_run(chunk_id=chunks[0].pk)  # a third delivery finds the chunk done
    assert batch._attach(late, late_scored) is False  # the stalled one wakes up: too late, nothing written
    job.refresh_from_db()
    assert (job.status, job.rows_done) == ("succeeded", 1200)
    assert [int(r["row"]) for r in read_csv(job)] == list(range(1200))
    assert ScoringChunk.objects.get(pk=chunks[0].pk).attempts == 2


def test_a_chunk_that_always_crashes_fails_after_its_attempts(ready_version, data_scientist):
    job = batch.job_create(model=ready_version.model, version=ready_version, user=data_scientist,
                           upload=upload(csv_bytes(scoring_file(rows=600)), "in.csv"), chunk_size=500)
    batch.job_plan(job_id=job.pk)
    doomed, other = ScoringChunk.objects.filter(job=job).order_by("index")
    for _ in range(batch.CHUNK_MAX_ATTEMPTS):
        assert batch._claim(doomed.pk) is not None  # claimed, then its worker "dies"
    batch.chunk_run(chunk_id=doomed.pk)  # the next delivery gives up instead of looping
    batch.chunk_run(chunk_id=other.pk)
    doomed.refresh_from_db()
    job.refresh_from_db()
    assert doomed.status == "failed" and doomed.attempts == batch.CHUNK_MAX_ATTEMPTS
    assert (job.status, job.rows_done, job.rows_failed) == ("failed", 100, 500)
    errors = read_csv(job, errors_only=True)
    assert len(errors) == 500 and "crashed its worker 3 times" in errors[0]["error"]


def test_it_writes_formula_like_text_safely_and_numbers_as_numbers(ready_version, data_scientist):
    frame = scoring_file(rows=4)
    frame["customer_id"] = ["=HYPERLINK(\"http://x\")", "+1", "@SUM(A1)", "\tcmd"]
    rows = read_csv(run_job(ready_version, data_scientist, frame))
    assert [r["id"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "'+1", "'@SUM(A1)", "'\tcmd"]
    assert all(0 <= float(r["probability_Yes"]) <= 1 for r in rows)


def test_it_refuses_a_file_without_the_models_columns(ready_version, data_scientist, api_client_for):
    data = csv_bytes(scoring_file().drop(columns=["Contract"]))
    response = api_client_for(data_scientist).post(
        "/api/v1/scoring-jobs/", {"model": "churn", "version": 1, "file": upload(data, "in.csv")}, format="multipart")
    assert response.status_code == 400
    assert "Contract" in response.json()["error"]["message"]
    assert not ScoringJob.objects.exists()


def test_it_accepts_a_job_and_reports_progress(ready_version, data_scientist, api_client_for):
    client = api_client_for(data_scientist)
    response = client.post("/api/v1/scoring-jobs/", {"model": "churn", "version": 1, "id_column": "customer_id",
                                                     "chunk_size": 500,
                                                     "file": upload(csv_bytes(scoring_file()), "in.csv")},
                           format="multipart")
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert client.get(f"/api/v1/scoring-jobs/{job_id}/result").status_code == 409
    batch.job_plan(job_id=job_id)
    for chunk in ScoringChunk.objects.filter(job_id=job_id)[:1]:
        batch.chunk_run(chunk_id=chunk.pk)
    progress = client.get(f"/api/v1/scoring-jobs/{job_id}/").json()["progress"]
    assert (progress["total_rows"], progress["rows_done"], progress["percent"]) == (1200, 500, 41.7)


def test_it_cancels_pending_chunks(ready_version, data_scientist, api_client_for):
    job = batch.job_create(model=ready_version.model, version=ready_version, user=data_scientist,
                           upload=upload(csv_bytes(scoring_file()), "in.csv"), chunk_size=500)
    batch.job_plan(job_id=job.pk)
    response = api_client_for(data_scientist).post(f"/api/v1/scoring-jobs/{job.pk}/cancel/")
    assert response.json()["status"] == "cancelled"
    assert set(ScoringChunk.objects.filter(job=job).values_list("status", flat=True)) == {"cancelled"}
    batch.chunk_run(chunk_id=ScoringChunk.objects.filter(job=job).first().pk)
    assert not ScoringChunk.objects.filter(job=job).exclude(results_key="").exists()


def test_other_teams_cannot_see_a_job(ready_version, data_scientist, other_data_scientist, api_client_for):
    job = batch.job_create(model=ready_version.model, version=ready_version, user=data_scientist,
                           upload=upload(csv_bytes(scoring_file(rows=10)), "in.csv"))
    assert api_client_for(other_data_scientist).get(f"/api/v1/scoring-jobs/{job.pk}/").status_code == 404
    assert api_client_for(other_data_scientist).get("/api/v1/scoring-jobs/").json()["count"] == 0


def test_it_plans_a_job_whose_planning_message_was_lost(ready_version, data_scientist, monkeypatch):
    from datetime import timedelta

    from scoring import tasks

    job = batch.job_create(model=ready_version.model, version=ready_version, user=data_scientist,
                           upload=upload(csv_bytes(scoring_file(rows=10)), "in.csv"), id_column="customer_id")
    sent = []
    monkeypatch.setattr(tasks.job_plan_task, "delay", lambda pk: sent.append(pk))  # the broker, as the spy
    assert batch.chunks_reconcile() == 0  # a fresh job is left alone
    assert batch.chunks_reconcile(stale_after=timedelta(0)) == 1
    assert sent == [job.pk]
    batch.job_plan(job_id=job.pk)  # the re-sent message arrives: the job leaves `queued`
    sent.clear()
    batch.chunks_reconcile(stale_after=timedelta(0))
    assert job.pk not in sent

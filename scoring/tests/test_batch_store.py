"""The results store's own guards: a done chunk always has its part, no row is covered twice, and
rows of jobs scored before parts existed survive the move to parts."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from scoring.models import ScoringChunk, ScoringJob
from scoring.tests.test_batch import read_csv, run_job, scoring_file

BEFORE_PARTS = [("scoring", "0004_batch_export_parts_result_job_link")]
WITH_PARTS = [("scoring", "0005_results_parts")]


@pytest.mark.django_db
def test_a_chunk_cannot_be_done_without_its_results_part(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=10))
    with pytest.raises(IntegrityError), transaction.atomic():
        ScoringChunk.objects.filter(job=job).update(results_key="")


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the exclusion constraint is PostgreSQL's")
def test_two_chunks_of_a_job_never_cover_the_same_row(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=1200))
    with pytest.raises(IntegrityError), transaction.atomic():
        ScoringChunk.objects.create(job=job, index=99, start_row=999, end_row=1001)
    ScoringChunk.objects.create(job=job, index=100, start_row=1200, end_row=1300)  # past the end: allowed


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rows_of_jobs_scored_before_parts_become_parts(ready_version, data_scientist):
    apps = _migrate(BEFORE_PARTS).loader.project_state(BEFORE_PARTS).apps
    try:
        job_model, chunk_model, result_model = (apps.get_model("scoring", n) for n in
                                                ("ScoringJob", "ScoringChunk", "ScoringResult"))
        job = job_model.objects.create(model_id=ready_version.model_id, version_id=ready_version.pk,
                                       requested_by_id=data_scientist.pk, input_key="k", input_sha256="0" * 64,
                                       input_format="csv", status="partial", total_rows=3, rows_done=2, rows_failed=1)
        chunk_model.objects.create(job=job, index=0, start_row=0, end_row=3, status="done")
        result_model.objects.bulk_create([
            result_model(job_id=job.pk, row_number=0, entity_id="a", prediction="Yes",
                         probabilities={"No": 0.25, "Yes": 0.75}, score=0.75),
            result_model(job_id=job.pk, row_number=1, entity_id="b", error="tenure: expected a number, got 'x'"),
            result_model(job_id=job.pk, row_number=2, entity_id="c", prediction="No",
                         probabilities={"No": 0.875, "Yes": 0.125}, score=0.125),
        ])
    finally:
        _migrate(WITH_PARTS)
    moved = ScoringJob.objects.get(pk=job.pk)
    rows = [(r["row"], r["id"], r["prediction"], r["probability_Yes"]) for r in read_csv(moved)]
    assert rows == [("0", "a", "Yes", "0.75"), ("2", "c", "No", "0.125")]
    assert [(e["row"], e["error"]) for e in read_csv(moved, errors_only=True)] == [
        ("1", "tenure: expected a number, got 'x'")]

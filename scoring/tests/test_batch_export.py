"""The results download: joined from the lines each chunk stored with its done flag, checked before sending."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage

from registry.artifacts import ArtifactTampered
from scoring import batch
from scoring.models import ScoringChunk, ScoringResult
from scoring.tests.test_batch import read_csv, run_job, scoring_file

pytestmark = pytest.mark.django_db


def test_it_serves_the_same_rows_from_stored_lines_as_from_the_result_table(ready_version, data_scientist):
    frame = scoring_file(rows=1200, bad_rows=(5,))
    frame.loc[9, "customer_id"] = "-42"
    job = run_job(ready_version, data_scientist, frame)
    assert ScoringChunk.objects.filter(job=job).exclude(export_key="").count() == 3
    from_lines = read_csv(job)
    ScoringChunk.objects.filter(job=job).update(export_key="", export_sha256="")  # a job scored before lines were kept
    from_rows = read_csv(job)
    assert len(from_lines) == 1199 and {r["row"]: r["id"] for r in from_lines}["9"] == "'-42"
    assert [(r["row"], r["id"], r["prediction"], r["model_version"]) for r in from_lines] == [
        (r["row"], r["id"], r["prediction"], r["model_version"]) for r in from_rows]
    assert [float(r["probability_Yes"]) for r in from_lines] == [float(r["probability_Yes"]) for r in from_rows]


def test_it_refuses_to_send_stored_lines_that_changed(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=600))
    key = ScoringChunk.objects.filter(job=job).order_by("index").last().export_key
    with default_storage.open(key, "wb") as out:  # storage edited behind the portal's back
        out.write(b"0,\"c0\",\"Yes\",0.0,1.0,1\n")
    with pytest.raises(ArtifactTampered):
        read_csv(job)


def test_a_chunk_run_twice_stores_its_lines_once(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=600))
    first = ScoringChunk.objects.filter(job=job).order_by("index").first()
    before = (first.export_key, first.export_sha256)
    ScoringChunk.objects.filter(pk=first.pk).update(status="running")  # as if its message came back
    batch.chunk_run(chunk_id=first.pk)
    first.refresh_from_db()
    assert (first.export_key, first.export_sha256) == before
    assert ScoringResult.objects.filter(job=job).count() == 600


def test_the_parquet_results_hold_the_same_numbers(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=700))
    table = pq.read_table(io.BytesIO(batch.results_parquet(job)))
    rows = read_csv(job)
    assert table.column("row").to_pylist() == [int(r["row"]) for r in rows]
    assert table.column("id").to_pylist() == [r["id"] for r in rows]
    assert table.column("probability_No").to_pylist() == [float(r["probability_No"]) for r in rows]

"""The results download: joined from the parts each chunk stored with its done flag, checked before sending."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage

from registry.artifacts import ArtifactTampered
from scoring import batch
from scoring.models import ScoringChunk
from scoring.tests.test_batch import read_csv, run_job, scoring_file

pytestmark = pytest.mark.django_db


def test_it_serves_the_same_rows_from_stored_lines_as_from_the_results_parts(ready_version, data_scientist):
    frame = scoring_file(rows=1200, bad_rows=(5,))
    frame.loc[9, "customer_id"] = "-42"
    job = run_job(ready_version, data_scientist, frame)
    assert ScoringChunk.objects.filter(job=job).exclude(export_key="").count() == 3
    from_lines = read_csv(job)
    ScoringChunk.objects.filter(job=job).update(export_key="", export_sha256="")  # a job whose chunks kept no lines
    from_rows = read_csv(job)
    assert len(from_lines) == 1199 and {r["row"]: r["id"] for r in from_lines}["9"] == "'-42"
    assert [(r["row"], r["id"], r["prediction"], r["model_version"]) for r in from_lines] == [
        (r["row"], r["id"], r["prediction"], r["model_version"]) for r in from_rows]
    assert [float(r["probability_Yes"]) for r in from_lines] == [float(r["probability_Yes"]) for r in from_rows]


def test_it_refuses_to_send_stored_lines_that_changed(ready_version, data_scientist):
    # a row count no other test uses: parts are stored by content, and this one is spoiled for good
    job = run_job(ready_version, data_scientist, scoring_file(rows=651))
    key = ScoringChunk.objects.filter(job=job).order_by("index").last().export_key
    with default_storage.open(key, "wb") as out:  # storage edited behind the portal's back
        out.write(b"0,\"c0\",\"Yes\",0.0,1.0,1\n")
    with pytest.raises(ArtifactTampered):
        read_csv(job)


def test_the_parquet_results_hold_the_same_numbers(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=700))
    table = pq.read_table(io.BytesIO(batch.results_parquet(job)))
    rows = read_csv(job)
    assert table.column("row").to_pylist() == [int(r["row"]) for r in rows]
    assert table.column("id").to_pylist() == [r["id"] for r in rows]
    assert table.column("probability_No").to_pylist() == [float(r["probability_No"]) for r in rows]


def test_it_refuses_to_use_a_results_part_that_changed(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=652, bad_rows=(2,)))  # a count of its own
    key = ScoringChunk.objects.filter(job=job).order_by("index").first().results_key
    with default_storage.open(key, "wb") as out:
        out.write(b"PAR1 not the stored part")
    with pytest.raises(ArtifactTampered):
        read_csv(job, errors_only=True)


def test_the_parquet_results_keep_labels_and_ids_typed_when_rows_fail(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=600, bad_rows=(0, 599)))
    table = pq.read_table(io.BytesIO(batch.results_parquet(job)))
    assert table.column("row").to_pylist() == list(range(1, 599))
    assert set(table.column("prediction").to_pylist()) <= {"Yes", "No"}
    assert table.column("model_version").to_pylist() == [1] * 598


def test_scored_entities_are_the_scored_rows_with_their_positive_class_probability(ready_version, data_scientist):
    job = run_job(ready_version, data_scientist, scoring_file(rows=600, bad_rows=(4,)))
    entities = list(batch.scored_entities(job))
    rows = read_csv(job)
    assert [(r, e) for r, e, _ in entities] == [(int(r["row"]), r["id"]) for r in rows]
    assert [s for _, _, s in entities] == [float(r["probability_Yes"]) for r in rows]

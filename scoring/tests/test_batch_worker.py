"""Batch jobs on a real worker, including workers killed mid-job: each input row exactly once."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings

from conftest import wait_for
from registry.tests.fixtures import csv_bytes, upload
from scoring import batch
from scoring.models import ScoringChunk, ScoringJob
from scoring.tests.test_batch import scoring_file

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
needs_redis = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"),
    reason="killing workers is proven on the Redis broker (as CI runs it): kombu's filesystem broker keeps a "
           "killed task's message unacknowledged, which blocks that worker's prefetch window",
)


def submit(version, user, rows, chunk_size):
    return batch.job_create(model=version.model, version=version, user=user, id_column="customer_id",
                            upload=upload(csv_bytes(scoring_file(rows=rows)), "in.csv"), chunk_size=chunk_size)


def finished(job_id: int, reconcile_after: float | None = None) -> bool:
    if reconcile_after is not None:
        batch.chunks_reconcile(stale_after=timedelta(seconds=reconcile_after))
    return ScoringJob.objects.get(pk=job_id).is_finished


def assert_each_row_once(job: ScoringJob, rows: int) -> None:
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.rows_failed) == ("succeeded", rows, 0)
    stored = [n for part in batch._parts(job) for n in part.column("row").to_pylist()]
    downloaded = [int(line.split(",", 1)[0]) for line in "".join(batch.results_csv(job)).splitlines()[1:]]
    assert stored == downloaded == list(range(rows))


def test_a_job_runs_on_a_real_worker(celery_worker_process, ready_version, data_scientist):
    job = submit(ready_version, data_scientist, rows=3000, chunk_size=500)
    wait_for(lambda: finished(job.pk), timeout=120, interval=0.5)
    assert_each_row_once(job, 3000)


@needs_redis
def test_killing_worker_processes_mid_job_loses_and_duplicates_no_row(celery_worker_process, ready_version,
                                                                       data_scientist):
    job = submit(ready_version, data_scientist, rows=40_000, chunk_size=4000)
    kills, interrupted, deadline = 0, False, time.monotonic() + 90
    # Kill the pool while chunks run; a chunk can finish in the instant before the kill lands, so kill
    # again (after the pool is back) until one was caught mid-chunk: still running with no process left.
    while not interrupted and kills < 5 and time.monotonic() < deadline and not finished(job.pk):
        running = list(ScoringChunk.objects.filter(job=job, status="running").values_list("pk", flat=True))
        if running:
            for pid in celery_worker_process.children():
                os.kill(pid, signal.SIGKILL)
            kills += 1
            time.sleep(0.2)
            interrupted = ScoringChunk.objects.filter(pk__in=running, status="running").exists()
            if not interrupted:
                time.sleep(2)  # the pool processes are replaced before the next try
        time.sleep(0.02)
    wait_for(lambda: finished(job.pk, reconcile_after=5), timeout=180, interval=1)
    assert interrupted, f"no chunk was caught mid-run in {kills} kills"
    assert ScoringChunk.objects.filter(job=job, attempts__gt=1).exists()  # the interrupted chunk ran again
    assert_each_row_once(job, 40_000)


@needs_redis
def test_a_whole_worker_killed_mid_job_is_recovered(celery_worker_process, ready_version, data_scientist):
    job = submit(ready_version, data_scientist, rows=30_000, chunk_size=2000)
    wait_for(lambda: ScoringChunk.objects.filter(job=job, status="running").exists(), timeout=60, interval=0.05)
    celery_worker_process.kill_all()  # parent and children at once, no chance to requeue anything
    stuck = ScoringChunk.objects.filter(job=job, status="running").count()
    celery_worker_process.restart()
    started = time.monotonic()
    wait_for(lambda: finished(job.pk, reconcile_after=3), timeout=180, interval=1)
    print(f"recovered {stuck} stuck chunk(s) in {time.monotonic() - started:.1f} s")
    assert_each_row_once(job, 30_000)


def test_chunks_whose_messages_were_never_sent_are_queued_again(celery_worker_process, ready_version, data_scientist,
                                                                 monkeypatch):
    # The planner died right after its commit: the chunks exist, no message was ever sent for them.
    # (Commits here are real, so on_commit hooks run at once: the messages are what is held back.)
    from scoring.tasks import chunk_run_task, job_plan_task

    with monkeypatch.context() as unsent:
        for task in (job_plan_task, chunk_run_task):
            unsent.setattr(task, "delay", lambda *args, **kwargs: None)
        job = submit(ready_version, data_scientist, rows=3000, chunk_size=1000)
        batch.job_plan(job_id=job.pk)
    assert set(ScoringChunk.objects.filter(job=job).values_list("status", flat=True)) == {"pending"}
    wait_for(lambda: finished(job.pk, reconcile_after=1), timeout=120, interval=1)
    assert_each_row_once(job, 3000)

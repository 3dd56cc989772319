"""Batch results move from one table row per input row to one Parquet part per chunk.

Jobs scored before keep every row: their ScoringResult rows are written out as their
chunks' parts before the table goes. On PostgreSQL an exclusion constraint then makes
(job, row) unique across a job's chunks.
"""

import io

from django.db import migrations, models

EXCLUSION = "scoring_chunk_rows_once"


def _part(rows: list[tuple], classes: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def values(items: list) -> pa.Array:
        try:
            return pa.array(items)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([None if v is None else str(v) for v in items], pa.string())

    columns = {"row": pa.array([r[0] for r in rows], pa.int64()), "id": pa.array([r[1] for r in rows], pa.string()),
               "prediction": values([r[2] for r in rows])}
    for name in classes:
        columns[f"probability_{name}"] = pa.array([(r[3] or {}).get(name) for r in rows], pa.float64())
    columns["score"] = pa.array([r[4] for r in rows], pa.float64())
    columns["error"] = pa.array([r[5] for r in rows], pa.string())
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def results_to_parts(apps, schema_editor):
    from registry import artifacts

    chunk_model = apps.get_model("scoring", "ScoringChunk")
    result_model = apps.get_model("scoring", "ScoringResult")
    for chunk in chunk_model.objects.filter(status="done", results_key="").select_related("job__version"):
        rows = list(result_model.objects.filter(
            job_id=chunk.job_id, row_number__gte=chunk.start_row, row_number__lt=chunk.end_row,
        ).order_by("row_number").values_list("row_number", "entity_id", "prediction", "probabilities", "score",
                                             "error"))
        classes = [str(c) for c in chunk.job.version.signature.get("output", {}).get("classes", [])]
        blob = artifacts.blob_put_bytes(_part(rows, classes), "results")
        chunk_model.objects.filter(pk=chunk.pk).update(results_key=blob.key, results_sha256=blob.sha256)


def exclusion_add(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: the planner alone hands out disjoint ranges
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        f"ALTER TABLE scoring_scoringchunk ADD CONSTRAINT {EXCLUSION} EXCLUDE USING gist "
        "(job_id WITH =, int8range(start_row, end_row) WITH &&)")


def exclusion_remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE scoring_scoringchunk DROP CONSTRAINT IF EXISTS {EXCLUSION}")


class Migration(migrations.Migration):

    dependencies = [
        ("scoring", "0004_batch_export_parts_result_job_link"),
    ]

    operations = [
        migrations.AddField(
            model_name="scoringchunk",
            name="results_key",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="scoringchunk",
            name="results_sha256",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(results_to_parts, migrations.RunPython.noop),
        migrations.DeleteModel(name="ScoringResult"),
        migrations.AddConstraint(
            model_name="scoringchunk",
            constraint=models.CheckConstraint(condition=models.Q(end_row__gte=models.F("start_row")),
                                              name="scoring_chunk_rows_ordered"),
        ),
        migrations.AddConstraint(
            model_name="scoringchunk",
            constraint=models.CheckConstraint(condition=~models.Q(status="done") | ~models.Q(results_key=""),
                                              name="scoring_done_chunk_has_results"),
        ),
        migrations.RunPython(exclusion_add, exclusion_remove),
    ]

"""Retraining: Admin registrations (read-mostly: recipes are edited on the model's retraining page)."""

from __future__ import annotations

from django.contrib import admin

from retraining.models import RetrainingRun, TrainingRecipe


@admin.register(TrainingRecipe)
class TrainingRecipeAdmin(admin.ModelAdmin):
    list_display = ["model", "kind", "estimator", "function_path", "data_source", "cron", "enabled", "owner"]
    list_filter = ["kind", "data_source", "enabled"]
    readonly_fields = ["dataset_key", "dataset_sha256", "schedule", "created_at", "updated_at"]


@admin.register(RetrainingRun)
class RetrainingRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "model", "status", "trigger", "produced_version", "created_at", "finished_at"]
    list_filter = ["status", "trigger"]
    readonly_fields = [f.name for f in RetrainingRun._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False

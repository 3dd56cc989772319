"""The global default approval policy: one approver for staging and production, all gates on."""

from django.db import migrations


def create(apps, schema_editor):
    apps.get_model("registry", "ApprovalPolicy").objects.get_or_create(model=None)


def remove(apps, schema_editor):
    apps.get_model("registry", "ApprovalPolicy").objects.filter(model=None).delete()


class Migration(migrations.Migration):
    dependencies = [("registry", "0003_registeredmodel_evaluation_format_and_more")]
    operations = [migrations.RunPython(create, remove)]

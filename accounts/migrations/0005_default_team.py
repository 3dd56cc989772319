"""A first team, so a fresh portal can register models before anyone sets teams up."""

from django.db import migrations


def create(apps, schema_editor):
    apps.get_model("accounts", "Team").objects.get_or_create(slug="data-science", defaults={"name": "Data science"})


def remove(apps, schema_editor):
    apps.get_model("accounts", "Team").objects.filter(slug="data-science", members=None).delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_team")]
    operations = [migrations.RunPython(create, remove)]

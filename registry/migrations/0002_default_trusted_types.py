"""Types beyond skops' defaults that common scikit-learn pipelines need, reviewed as data-only.

`numpy.dtype` appears in any pipeline with a SimpleImputer or an encoder's
dtype parameter; it describes a dtype and runs no code. Admins can remove it.
"""

from django.db import migrations

DEFAULTS = {"numpy.dtype": "Shipped default: a NumPy dtype descriptor (data only), used by SimpleImputer and encoders."}


def create(apps, schema_editor):
    TrustedType = apps.get_model("registry", "TrustedType")
    for name, reason in DEFAULTS.items():
        TrustedType.objects.get_or_create(name=name, defaults={"reason": reason})


def remove(apps, schema_editor):
    apps.get_model("registry", "TrustedType").objects.filter(name__in=DEFAULTS, added_by=None).delete()


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]

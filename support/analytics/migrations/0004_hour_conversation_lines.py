"""Hour rollups keep the CSV lines of the conversations started in them (the unfiltered conversation
export reads those): every hour is marked stale (the console, the beat task or `manage.py rollups`
rebuild them)."""

from importlib import import_module

from django.db import migrations, models

mark_every_hour = import_module("support.analytics.migrations.0002_rollups_latency_ratings").mark_every_hour


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0003_conversation_rollups'),
    ]

    operations = [
        migrations.AddField(
            model_name='hourrollup',
            name='conversation_lines',
            field=models.TextField(default=''),
        ),
        migrations.RunPython(mark_every_hour, migrations.RunPython.noop),
    ]

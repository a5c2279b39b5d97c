"""Day rollups (a range's figures are the sum of its days), hour rollups keep their figures by intent
(a day's intent rows are summed from its hours), and each conversation gets a rollup for the
conversation list and its export: every hour is marked stale (the console, the beat task or
`manage.py rollups` rebuild them)."""

from importlib import import_module

import django.db.models.deletion
from django.db import migrations, models

mark_every_hour = import_module("support.analytics.migrations.0002_rollups_latency_ratings").mark_every_hour


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0002_rollups_latency_ratings'),
        ('conversations', '0007_ratings_and_latency'),
    ]

    operations = [
        migrations.CreateModel(
            name='DayRollup',
            fields=[
                ('day', models.DateField(primary_key=True, serialize=False)),
                ('figures', models.JSONField(default=dict)),
            ],
        ),
        migrations.AddField(
            model_name='hourrollup',
            name='intents',
            field=models.JSONField(default=dict),
        ),
        migrations.CreateModel(
            name='ConversationRollup',
            fields=[
                ('conversation', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='rollup', serialize=False, to='conversations.conversation')),
                ('created_at', models.DateTimeField()),
                ('owner', models.CharField(max_length=16)),
                ('customer_messages', models.PositiveIntegerField(default=0)),
                ('to_small', models.PositiveIntegerField(default=0)),
                ('to_large', models.PositiveIntegerField(default=0)),
                ('to_people', models.PositiveIntegerField(default=0)),
                ('people_messages', models.PositiveIntegerField(default=0)),
                ('cost_usd', models.DecimalField(decimal_places=8, default=0, max_digits=14)),
                ('routes', models.TextField(default='|')),
                ('line', models.TextField()),
            ],
            options={
                'indexes': [models.Index(fields=['-created_at', '-conversation'], name='conversation_rollup_started')],
            },
        ),
        migrations.RunPython(mark_every_hour, migrations.RunPython.noop),
    ]

"""The rollups now also hold answer times, ratings and agents' time: every hour is rebuilt (marked
stale; the console, the beat task or `manage.py rollups` rebuild them)."""

from datetime import UTC

from django.db import migrations
from django.db.models.functions import TruncHour
from django.utils import timezone


def mark_every_hour(apps, schema_editor):  # type: ignore[no-untyped-def]
    StaleHour = apps.get_model("analytics", "StaleHour")
    hours = set()
    for model in (apps.get_model("conversations", "Message"), apps.get_model("conversations", "Conversation")):
        hours |= set(
            model.objects.annotate(hour=TruncHour("created_at", tzinfo=UTC)).values_list("hour", flat=True).distinct()
        )
    now = timezone.now()
    StaleHour.objects.bulk_create(
        [StaleHour(hour=hour, marked_at=now) for hour in hours],
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["hour"],
        update_fields=["marked_at"],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_rollups"),
        ("conversations", "0007_ratings_and_latency"),
        ("review", "0006_label_spot_check"),
    ]

    operations = [migrations.RunPython(mark_every_hour, migrations.RunPython.noop)]

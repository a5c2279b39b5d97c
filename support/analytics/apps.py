from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "support.analytics"
    label = "analytics"

    def ready(self) -> None:
        from support.analytics import rollups

        # Every saved or deleted message, label or conversation marks its hour's rollups stale.
        rollups.connect()

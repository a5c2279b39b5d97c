from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "support.analytics"
    label = "analytics"

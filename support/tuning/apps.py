from django.apps import AppConfig


class TuningConfig(AppConfig):
    name = "support.tuning"
    label = "tuning"

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "support.review"
    label = "review"

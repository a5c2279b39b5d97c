from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "support.knowledge"
    label = "knowledge"

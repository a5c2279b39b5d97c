from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "support.conversations"
    label = "conversations"

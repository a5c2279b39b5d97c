from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class KnowledgeConfig(AppConfig):
    name = "support.knowledge"
    label = "knowledge"

    def ready(self) -> None:
        from support.knowledge import answers
        from support.knowledge.models import Article

        # An article edited or deleted in this process is answered from the database again at once.
        post_save.connect(answers.forget, sender=Article, dispatch_uid="knowledge-answers-saved")
        post_delete.connect(answers.forget, sender=Article, dispatch_uid="knowledge-answers-deleted")

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class KnowledgeConfig(AppConfig):
    name = "support.knowledge"
    label = "knowledge"

    def ready(self) -> None:
        from support.knowledge import answers, freshness
        from support.knowledge.models import Article, Phrasing
        from support.review.models import Label

        # An article edited or deleted in this process is answered from the database again at once.
        post_save.connect(answers.forget, sender=Article, dispatch_uid="knowledge-answers-saved")
        post_delete.connect(answers.forget, sender=Article, dispatch_uid="knowledge-answers-deleted")
        # What the "model out of date" banner depends on, changed in this process: asked again at once.
        for sender in (Article, Phrasing, Label):
            for signal in (post_save, post_delete):
                signal.connect(
                    freshness.forget, sender=sender, dispatch_uid=f"knowledge-freshness-{sender.__name__}-{signal}"
                )

from django.urls import path

from support.knowledge import views

urlpatterns = [
    path("", views.model_page, name="small-model"),
    path("train/", views.train, name="small-model-train"),
    path("promote/", views.promote, name="small-model-promote"),
    path("discard/", views.discard, name="small-model-discard"),
    path("roll-back/", views.roll_back, name="small-model-roll-back"),
    path("new-article/", views.new_article, name="small-model-new-article"),
]

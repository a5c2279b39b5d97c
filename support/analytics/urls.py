from django.urls import path

from support.analytics import views

urlpatterns = [
    path("api/stats/", views.stats_api, name="stats-api"),
    path("console/", views.console, name="console"),
    path("console/intents/", views.intents, name="console-intents"),
    path("console/conversations/", views.conversations, name="console-conversations"),
    path("console/export/<str:table>.csv", views.export, name="console-export"),
]

from django.urls import path

from support.analytics import views

urlpatterns = [
    path("api/stats/", views.stats_api, name="stats-api"),
    path("console/", views.console, name="console"),
]

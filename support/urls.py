from django.contrib import admin
from django.urls import include, path

from support import metrics
from support.conversations.views import demo, health

urlpatterns = [
    path("", demo, name="demo"),
    path("health/", health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
    path("review/", include("support.review.urls")),
    path("model/", include("support.knowledge.urls")),
    path("console/operating-point/", include("support.tuning.urls")),
    path("", include("support.analytics.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

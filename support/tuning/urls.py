from django.urls import path

from support.tuning import views

urlpatterns = [
    path("", views.page, name="operating-point"),
    path("choose/", views.choose, name="operating-point-choose"),
    path("<int:id>/revert/", views.revert, name="operating-point-revert"),
]

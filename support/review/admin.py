from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from support.permissions import is_admin
from support.review.models import CannedReply


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Canned replies are kept by admins: the Admins group, not only superusers with model permissions."""

    list_display = ("title", "updated_at")
    search_fields = ("title", "text")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

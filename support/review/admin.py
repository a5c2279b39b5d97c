from django.contrib import admin

from support.permissions import AdminsOnly
from support.review.models import CannedReply


@admin.register(CannedReply)
class CannedReplyAdmin(AdminsOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """Canned replies are kept by admins: the Admins group, not only superusers with model permissions."""

    list_display = ("title", "updated_at")
    search_fields = ("title", "text")

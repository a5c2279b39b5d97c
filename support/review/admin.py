from django.contrib import admin

from support.review.models import CannedReply


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "updated_at")
    search_fields = ("title", "text")

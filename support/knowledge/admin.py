"""The knowledge base in the admin site: admins (the Admins group, not only superusers with model
permissions) list, search, add, edit, retire and delete articles and their example phrasings.

Saving or deleting an article here clears the cached answers as any save does (the signals in
apps.py); retiring one goes through the same save. The slug is the small model's intent label, so it
is fixed once an article exists: agents' labels and the model serving name it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from support.knowledge import freshness
from support.knowledge.loader import MIN_PHRASINGS
from support.knowledge.models import Article, Phrasing
from support.permissions import AdminsOnly


class PhrasingInline(AdminsOnly, admin.TabularInline):  # type: ignore[type-arg]
    model = Phrasing
    extra = 3
    verbose_name = "example phrasing"
    verbose_name_plural = (
        f"Example phrasings: how customers ask for it (the small model learns from these; {MIN_PHRASINGS} or more)"
    )


class ArticleForm(forms.ModelForm):  # type: ignore[type-arg]
    retired = forms.BooleanField(
        required=False,
        help_text=(
            "A retired article is kept, with agents' labels naming it, but is no longer answered, given to "
            "the large model nor trained on."
        ),
    )

    class Meta:
        model = Article
        fields = ("slug", "title", "answer", "tags")
        widgets = {"tags": forms.TextInput(attrs={"size": 60})}
        help_texts = {
            "slug": "The small model's intent label: lowercase letters, digits and hyphens. It cannot be changed "
            "once the article exists.",
            "tags": 'A JSON list of strings, e.g. ["billing"].',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["retired"].initial = self.instance.retired_at is not None

    def save(self, commit: bool = True) -> Article:
        article: Article = super().save(commit=False)
        retire = self.cleaned_data.get("retired", False)
        if retire and article.retired_at is None:
            article.retired_at = timezone.now()
        elif not retire:
            article.retired_at = None
        if commit:
            article.save()
            self.save_m2m()
        return article


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("retired", "Retired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "live":
            return queryset.filter(retired_at__isnull=True)
        if self.value() == "retired":
            return queryset.filter(retired_at__isnull=False)
        return queryset


@admin.register(Article)
class ArticleAdmin(AdminsOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    form = ArticleForm
    inlines = [PhrasingInline]
    list_display = ("title", "slug", "phrasing_count", "live", "updated_at")
    list_filter = (StatusFilter, "updated_at")
    search_fields = ("title", "slug", "answer", "phrasings__text")
    readonly_fields = ("retired_at", "updated_at")
    actions = ["retire", "restore"]
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Article]:
        return super().get_queryset(request).annotate(phrasing_count=Count("phrasings", distinct=True))

    def get_readonly_fields(self, request: HttpRequest, obj: Article | None = None) -> tuple[str, ...]:
        # A new slug would orphan the labels and the model's intent that name the old one: add a new
        # article (and retire this one) instead.
        return (*self.readonly_fields, "slug") if obj is not None else self.readonly_fields

    def get_fields(self, request: HttpRequest, obj: Article | None = None) -> tuple[str, ...]:
        fields = ("slug", "title", "answer", "tags", "retired")
        return (*fields, "retired_at", "updated_at") if obj is not None else fields

    @admin.display(description="phrasings", ordering="phrasing_count")
    def phrasing_count(self, article: Article) -> int:
        return int(getattr(article, "phrasing_count", 0))

    @admin.display(description="live", boolean=True, ordering="retired_at")
    def live(self, article: Article) -> bool:
        return article.retired_at is None

    @admin.action(description="Retire the selected articles (no longer answered nor trained on)")
    def retire(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        count = 0
        for article in queryset.filter(retired_at__isnull=True):
            # Saved one by one, so that the cached answers are cleared as for any save.
            article.retired_at = timezone.now()
            article.save(update_fields=["retired_at", "updated_at"])
            count += 1
        self.message_user(request, f"{count} article{'s' if count != 1 else ''} retired.", messages.SUCCESS)

    @admin.action(description="Restore the selected retired articles")
    def restore(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        count = 0
        for article in queryset.filter(retired_at__isnull=False):
            article.retired_at = None
            article.save(update_fields=["retired_at", "updated_at"])
            count += 1
        self.message_user(request, f"{count} article{'s' if count != 1 else ''} restored.", messages.SUCCESS)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        article = form.instance
        count = article.phrasings.count()
        if count < MIN_PHRASINGS and article.retired_at is None:
            self.message_user(
                request,
                f"“{article.title}” has {count} example phrasing{'s' if count != 1 else ''}: "
                f"the small model learns an article better from {MIN_PHRASINGS} or more.",
                messages.WARNING,
            )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "model_out_of_date": freshness.model_out_of_date()}
        return super().changelist_view(request, extra_context)

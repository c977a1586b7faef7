from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

import signaltrail

from .models import Category, Product, ProductImage, ProductView, Tag


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    extra = 1


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "category", "price", "limit_per_user", "view_count")
    list_filter = ("category", "tags")
    search_fields = ("name",)
    filter_horizontal = ("tags",)
    readonly_fields = ("view_count", "history")
    inlines = [ProductImageInline]

    @admin.display(description=_("history"))
    def history(self, obj):
        if obj.pk is None:
            return "—"
        events = signaltrail.history(obj).select_related("content_type")[:20]
        return render_to_string("activity/_history.html", {"events": events})


@admin.register(ProductView)
class ProductViewAdmin(admin.ModelAdmin):
    list_display = ("product", "user", "session_key", "viewed_at")
    list_select_related = ("product", "user")
    readonly_fields = ("product", "user", "session_key", "viewed_at")

    def has_add_permission(self, request):
        return False


admin.site.register(Category)
admin.site.register(Tag)

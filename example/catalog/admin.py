from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

import signaltrail

from .models import Category, Product, Tag


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "category", "price", "stock")
    list_filter = ("category", "tags")
    search_fields = ("name",)
    filter_horizontal = ("tags",)
    readonly_fields = ("history",)

    @admin.display(description=_("history"))
    def history(self, obj: Product) -> str:
        if obj.pk is None:
            return "—"
        rows = (
            (
                f"{event.at:%Y-%m-%d %H:%M}",
                event.actor_label or "—",
                event.action,
                "; ".join(
                    f"{name}: {value[0]} → {value[1]}"
                    if isinstance(value, list)
                    else f"{name}: {value}"
                    for name, value in event.changes.items()
                ),
            )
            for event in signaltrail.history(obj)[:20]
        )
        return format_html_join("", "<div>{} · {} · {} · {}</div>", rows) or "—"


admin.site.register(Category)
admin.site.register(Tag)

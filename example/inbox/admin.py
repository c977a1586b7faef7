from django.contrib import admin

from .models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("sent_at", "to", "subject")
    search_fields = ("to", "subject")
    readonly_fields = ("sent_at", "from_email", "to", "subject", "body")

    def has_add_permission(self, request):
        return False

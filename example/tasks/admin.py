from django.contrib import admin

from .exceptions import message
from .models import Project, Task, TaskStats


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("title", "status", "project", "created_by", "completed_at")
    list_filter = ("status", "project")
    search_fields = ("title", "slug")
    filter_horizontal = ("assignees",)
    readonly_fields = ("completed_at",)

    def get_deleted_objects(self, objs, request):
        """Refuse, on the admin's own confirmation page, to delete tasks in progress.

        The admin asks this before deleting (the delete page and the
        "delete selected" action both do): listing a task in progress as
        "protected" makes the admin explain why and offer no delete button.
        The pre_delete receiver still guards every other path.
        """
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_progress = [obj for obj in objs if obj.status == Task.Status.IN_PROGRESS]
        return deleted, counts, perms_needed, [*protected, *map(message, in_progress)]

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(TaskStats)
class TaskStatsAdmin(admin.ModelAdmin):
    list_display = ("user", "completed", "last_completed_at")
    readonly_fields = ("user", "completed", "last_completed_at")

    def has_add_permission(self, request):
        return False


admin.site.register(Project)

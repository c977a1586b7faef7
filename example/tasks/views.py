from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

import signaltrail

from . import services
from .exceptions import TaskInProgressError
from .forms import AssignForm, TaskForm
from .models import Task

ACTIONS = {
    "start": services.start_task,
    "complete": services.complete_task,
    "reopen": services.reopen_task,
}


@login_required
def board(request):
    form = TaskForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        task = services.create_task(created_by=request.user, **form.cleaned_data)
        messages.success(request, _("Task “%(task)s” was created.") % {"task": task})
        return redirect("tasks:board")
    tasks = Task.objects.select_related("project", "created_by").prefetch_related("assignees")
    columns = [
        (status, label, [t for t in tasks if t.status == status])
        for status, label in Task.Status.choices
    ]
    return render(request, "tasks/board.html", {"columns": columns, "form": form})


@login_required
def detail(request, slug):
    task = get_object_or_404(
        Task.objects.select_related("project", "created_by").prefetch_related("assignees"),
        slug=slug,
    )
    history = signaltrail.history(task).select_related("content_type")[:50]
    return render(
        request,
        "tasks/detail.html",
        {"task": task, "assign_form": AssignForm(task=task), "history": history},
    )


@login_required
@require_POST
def change_status(request, slug, action):
    task = get_object_or_404(Task, slug=slug)
    if action not in ACTIONS:
        messages.error(request, _("Unknown action."))
        return redirect("tasks:board")
    ACTIONS[action](task, by=request.user)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = "tasks:board"  # only back to a page of this site
    return redirect(back)


@login_required
@require_POST
def assign(request, slug):
    task = get_object_or_404(Task, slug=slug)
    form = AssignForm(request.POST, task=task)
    if form.is_valid():
        user = form.cleaned_data["user"]
        services.assign_task(task, user, by=request.user)
        messages.success(
            request,
            _("%(user)s was assigned and will be notified by email.") % {"user": user},
        )
    else:
        messages.error(request, _("Choose a user who is not assigned yet."))
    return redirect(task)


@login_required
@require_POST
def unassign(request, slug, user_id):
    task = get_object_or_404(Task, slug=slug)
    user = get_object_or_404(get_user_model(), pk=user_id)
    services.unassign_task(task, user, by=request.user)
    messages.success(request, _("%(user)s is no longer assigned.") % {"user": user})
    return redirect(task)


@login_required
def delete(request, slug):
    task = get_object_or_404(Task, slug=slug)
    if request.method == "POST":
        try:
            services.delete_task(task)
        except TaskInProgressError as error:
            messages.error(request, error.args[0])
            return redirect(task)
        messages.success(request, _("Task “%(task)s” was deleted.") % {"task": task})
        return redirect("tasks:board")
    return render(request, "tasks/confirm_delete.html", {"task": task})

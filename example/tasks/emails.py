"""The task board's notifications, sent in the background (``@signaltrail.in_background``).

They run in the worker after the change committed; the task and the users
come back loaded fresh from the database (None if deleted since).
"""

from accounts.mail import send_to_user

import signaltrail

from .models import Task
from .signals import task_assigned, task_completed


@signaltrail.in_background(task_assigned, sender=Task)
def notify_assignee(sender, task, assignee, idempotency_key, assigned_by=None, **kwargs):
    if task is None or assignee is None:
        return
    if assigned_by is not None and assigned_by.pk == assignee.pk:
        return  # who assigns themselves needs no email about it
    context = {"task": task, "assigned_by": assigned_by}
    send_to_user(assignee, "tasks/email/assigned", context, idempotency_key)


@signaltrail.in_background(task_completed, sender=Task)
def notify_creator(sender, task, idempotency_key, completed_by=None, **kwargs):
    if task is None or task.created_by is None:
        return
    if completed_by is not None and completed_by.pk == task.created_by_id:
        return  # who completes their own task knows
    context = {"task": task, "completed_by": completed_by}
    send_to_user(task.created_by, "tasks/email/completed", context, idempotency_key)

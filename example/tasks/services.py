"""The task board's service layer: what views, the admin actions and scripts call.

Each function is one transaction. The domain signals (task_completed,
task_assigned) are sent from here, where the intent is known, instead of
being guessed from row changes in post_save.
"""

from django.db import transaction
from django.db.models.signals import m2m_changed

import signaltrail

from .models import Task
from .signals import task_assigned, task_completed


def create_task(*, title, created_by, project=None, description="", assignees=()):
    with transaction.atomic():
        task = Task.objects.create(
            title=title, project=project, description=description, created_by=created_by
        )
        for user in assignees:
            assign_task(task, user, by=created_by)
    return task


def start_task(task, *, by=None):
    return _set_status(task, Task.Status.IN_PROGRESS)


def reopen_task(task, *, by=None):
    return _set_status(task, Task.Status.TODO)


def complete_task(task, *, by=None):
    """Mark the task done and send task_completed, once: completing it again does nothing."""
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        if task.status == Task.Status.DONE:
            return task
        task.status = Task.Status.DONE
        task.save()  # a pre_save receiver sets completed_at
        task_completed.send(sender=Task, task=task, completed_by=by, using=task._state.db)
    return task


def assign_task(task, user, *, by=None):
    """Add ``user`` to the assignees and send task_assigned; False if already assigned.

    The generic "assignee added" receiver (on m2m_changed, which sends a
    task_assigned without ``assigned_by``) is muted here, in this call only:
    this function sends its own task_assigned, which says who assigned, and
    the assignee must get one email, not two. The audit trail is never
    muted: the m2m_add event is still recorded.
    """
    with transaction.atomic():
        if task.assignees.filter(pk=user.pk).exists():
            return False
        with signaltrail.muted(m2m_changed, sender=Task.assignees.through):
            task.assignees.add(user)
        task_assigned.send(
            sender=Task, task=task, assignee=user, assigned_by=by, using=task._state.db
        )
    return True


def unassign_task(task, user, *, by=None):
    task.assignees.remove(user)  # recorded in the trail as an m2m_remove event


def delete_task(task):
    """Delete the task; raises TaskInProgressError (nothing deleted) while it is in progress.

    The refusal is raised by a pre_delete receiver, inside the transaction
    Django opens for the delete without a savepoint: the atomic() here
    makes it a savepoint, so a caller inside its own transaction can catch
    the error and carry on.
    """
    with transaction.atomic():
        task.delete()


def _set_status(task, status):
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        if task.status != status:
            task.status = status
            task.save()
    return task

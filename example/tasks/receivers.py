"""In-process receivers of the task board, connected in TasksConfig.ready().

They fill fields, guard deletes, keep statistics and turn row changes into
the board's own signals, all inside the transaction of the change. The
emails listen to those signals in the background (tasks.emails).
"""

from django.contrib.auth import get_user_model
from django.db.models import F
from django.db.models.signals import m2m_changed, pre_delete, pre_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.text import slugify

from .exceptions import TaskInProgressError
from .models import Task, TaskStats
from .signals import task_assigned, task_completed

SLUG_LENGTH = Task._meta.get_field("slug").max_length


@receiver(pre_save, sender=Task, dispatch_uid="tasks.fill_slug")
def fill_slug(sender, instance, raw=False, using=None, **kwargs):
    """An empty slug becomes the title's, made unique with -2, -3, ..."""
    if raw or instance.slug:
        return
    base = slugify(instance.title)[: SLUG_LENGTH - 6].strip("-") or "task"
    taken = set(
        Task._base_manager.using(using)
        .filter(slug__startswith=base)
        .exclude(pk=instance.pk)
        .values_list("slug", flat=True)
    )
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    instance.slug = slug


@receiver(pre_save, sender=Task, dispatch_uid="tasks.track_completion")
def track_completion(sender, instance, raw=False, **kwargs):
    """completed_at: set when the task becomes DONE, cleared when it leaves DONE."""
    if raw:
        return
    if instance.status == Task.Status.DONE:
        if instance.completed_at is None:
            instance.completed_at = timezone.now()
    else:
        instance.completed_at = None


@receiver(pre_delete, sender=Task, dispatch_uid="tasks.refuse_deleting_in_progress")
def refuse_deleting_in_progress(sender, instance, **kwargs):
    # Raised inside Django's delete transaction: nothing at all is deleted,
    # also when this task is one of many in a queryset or cascade delete.
    if instance.status == Task.Status.IN_PROGRESS:
        raise TaskInProgressError(instance)


@receiver(m2m_changed, sender=Task.assignees.through, dispatch_uid="tasks.announce_assignees")
def announce_new_assignees(sender, instance, action, reverse, pk_set, using=None, **kwargs):
    """Send task_assigned for each user newly added to a task's assignees, however added.

    ``pk_set`` on post_add holds only the rows really added: someone who
    was already assigned is not announced again. Removals need no receiver:
    the trail records them (m2m_remove). tasks.services.assign_task mutes
    this receiver and sends a task_assigned that says who assigned.
    """
    if action != "post_add" or not pk_set:
        return
    User = get_user_model()
    if reverse:
        pairs = [(task, instance) for task in Task._base_manager.using(using).filter(pk__in=pk_set)]
    else:
        pairs = [(instance, user) for user in User._base_manager.using(using).filter(pk__in=pk_set)]
    for task, user in sorted(pairs, key=lambda pair: (pair[0].pk, pair[1].pk)):
        task_assigned.send(sender=Task, task=task, assignee=user, assigned_by=None, using=using)


@receiver(task_completed, sender=Task, dispatch_uid="tasks.count_completion")
def count_completion(sender, task, completed_by=None, **kwargs):
    """Per-user statistics: a database write, so it runs in the service's transaction."""
    if completed_by is None:
        return
    TaskStats.objects.get_or_create(user=completed_by)
    TaskStats.objects.filter(user=completed_by).update(
        completed=F("completed") + 1, last_completed_at=task.completed_at
    )

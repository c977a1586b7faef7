"""The task board's own signals.

- ``task_completed``: ``task`` and ``completed_by`` (a user, or None); sent by
  the service layer (tasks.services.complete_task).
- ``task_assigned``: ``task``, ``assignee`` and ``assigned_by`` (or None);
  sent by tasks.services.assign_task, and for assignees added any other way
  (the admin, a script) by the m2m_changed receiver, without ``assigned_by``.

Both are sent inside the transaction of the change; the notifications
listen to them in the background (tasks.emails), after the commit.
"""

from django.dispatch import Signal

task_completed = Signal()
task_assigned = Signal()

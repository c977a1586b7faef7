"""Handing a call to the task backend: django.tasks or Celery.

``SIGNALTRAIL["BACKGROUND"]`` picks it:

- ``"tasks"`` (default): Django's tasks framework, through the backend alias
  ``SIGNALTRAIL["TASK_BACKEND"]`` of ``settings.TASKS`` and the queue
  ``SIGNALTRAIL["TASK_QUEUE"]``. Any django.tasks backend works: the database
  one of ``django-tasks-db``, the RQ one of ``django-tasks-rq``, ...
- ``"celery"``: the current Celery app, task name ``signaltrail.run_call``
  (route it with Celery's ``task_routes``).

Either way the message is the call dict of :func:`calls.call_for`, and the
worker runs :func:`worker.execute` on it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

BACKENDS = ("tasks", "celery")


def send(call: dict[str, Any]) -> None:
    """Enqueue ``call``; raises if the backend refuses it or cannot be reached."""
    from ...conf import conf

    kind = conf.BACKGROUND
    if kind == "tasks":
        from .tasks import run_call  # type: ignore[attr-defined]

        run_call.using(backend=conf.TASK_BACKEND, queue_name=conf.TASK_QUEUE).enqueue(call)
    elif kind == "celery":
        from .tasks import celery_task

        # retry=False: fail at once when the broker is down; the relay retries.
        celery_task().apply_async(args=[call], retry=False)
    else:
        raise ImproperlyConfigured(
            f"SIGNALTRAIL['BACKGROUND'] is {kind!r}; use one of {', '.join(map(repr, BACKENDS))}."
        )

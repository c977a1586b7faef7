"""The task a worker runs for each call: for django.tasks and for Celery.

django.tasks finds a task by the dotted path of its function and expects a
``Task`` object there, so ``run_call`` is created on first access (module
``__getattr__``): creating a ``Task`` validates it against a task backend,
which needs the settings, and importing this module must not.
"""

from __future__ import annotations

import functools
from typing import Any

from .worker import execute

__all__ = ["celery_task", "run_call"]  # noqa: F822 - run_call comes from __getattr__


def _run_call(call: dict[str, Any]) -> dict[str, Any]:
    return execute(call)


# The path django.tasks records is module.qualname: it must name `run_call`.
_run_call.__name__ = _run_call.__qualname__ = "run_call"


@functools.cache
def _task() -> Any:
    from django.tasks import Task

    from ...conf import conf

    return Task(func=_run_call, backend=conf.TASK_BACKEND, queue_name=conf.TASK_QUEUE)


def __getattr__(name: str) -> Any:
    if name == "run_call":
        return _task()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def celery_task() -> Any:
    """The Celery task ``signaltrail.run_call``, registered with every Celery app."""
    from celery import shared_task

    return shared_task(name="signaltrail.run_call", ignore_result=True)(_run_call)

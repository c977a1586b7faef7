"""``@in_background``: connect a receiver whose calls go through the outbox.

When the signal is sent, the call is written as a :class:`~signaltrail.models.PendingCall`
row on the database alias of the change (the signal's ``using``), in the
transaction of the change: it commits with the change and vanishes with a
rollback, including a savepoint's. After the commit, an on-commit hook hands
the call to the task backend right away; if the process dies first, or the
backend is unreachable, the row stays pending and ``manage.py trail relay``
sends it.

In autocommit mode Django commits a plain ``save()`` *before* sending
``post_save``, so a row written by a ``post_save`` receiver would commit on
its own, just after the change: ``savebase.py`` makes such saves run in
one transaction.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models, router, transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal
from django.utils import timezone

from ..naming import signal_name
from . import calls
from .savebase import need_atomic_save

logger = logging.getLogger("signaltrail.background")

UID = "signaltrail.in_background"


@dataclass(frozen=True)
class Registration:
    name: str  # "module.qualname": how the call names the receiver
    func: Callable[..., Any]


# Receivers a worker may call, by name. Only functions decorated with
# @in_background are ever called: a message naming anything else (say, one
# forged in the broker) is refused.
receivers: dict[str, Registration] = {}


def _signals(signal: Signal | Iterable[Signal]) -> tuple[Signal, ...]:
    signals = tuple(signal) if isinstance(signal, list | tuple) else (signal,)
    for s in signals:
        if not isinstance(s, Signal):
            raise TypeError(f"in_background() takes django.dispatch.Signal objects, not {s!r}.")
    return signals


def _name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not inspect.isfunction(func) or not module or not qualname:
        raise TypeError(
            f"in_background() decorates plain functions, not {func!r}: a worker "
            "imports the receiver by its module and name."
        )
    if "." in qualname or "<" in qualname:
        raise TypeError(
            f"in_background() cannot send {module}.{qualname} to a worker: define it at "
            "module level (not in a class, another function or a lambda), so that a "
            "worker can import it."
        )
    return f"{module}.{qualname}"


def in_background(
    signal: Signal | Iterable[Signal],
    sender: Any = None,
    **connect_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the decorated receiver as a task, after the transaction commits.

    In the worker it is called as ``receiver(signal=..., sender=...,
    instance=<fresh from the database, or None>, changes={...},
    idempotency_key="...", **<the signal's other arguments that JSON can
    carry>)``; see :mod:`signaltrail.toolkit.background.calls`. Delivery is
    at least once: use ``idempotency_key`` to make side effects happen once.

    The function is returned unchanged and connected with a strong reference;
    ``signal`` may be a list of signals. Coroutine functions are accepted
    (run with ``async_to_sync`` in the worker).
    """
    signals = _signals(signal)
    if connect_kwargs.pop("weak", False):
        raise TypeError("in_background() receivers are always strongly referenced.")
    dispatch_uid = connect_kwargs.pop("dispatch_uid", None)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        name = _name(func)
        registration = Registration(name, func)
        receivers[name] = registration

        # Named after func, so that `trail signals` and trace() show (and
        # locate) the user's receiver, as for @on_commit.
        @functools.wraps(func)
        def schedule(signal: Signal, sender: Any, **kwargs: Any) -> None:
            write(registration, signal, sender, kwargs)

        schedule._signaltrail_in_background = func  # type: ignore[attr-defined]
        uid = dispatch_uid or f"{UID}:{name}"
        sender_ = _resolve(sender)
        for s in signals:
            connected_before = _is_connected(s, sender_, uid)
            s.connect(schedule, sender=sender_, weak=False, dispatch_uid=uid, **connect_kwargs)
            if s in (pre_save, post_save) and not connected_before:
                need_atomic_save(sender_, +1)
        _import_backend_tasks()
        return func

    return decorator


def disconnect(
    signal: Signal | Iterable[Signal],
    func: Callable[..., Any],
    sender: Any = None,
    dispatch_uid: str | None = None,
) -> bool:
    """Undo ``@in_background(signal, sender=sender)`` for ``func``; True if it was connected.

    Calls already written keep running: the worker still knows the function.
    """
    uid = dispatch_uid or f"{UID}:{_name(func)}"
    sender = _resolve(sender)
    found = False
    for s in _signals(signal):
        if s.disconnect(sender=sender, dispatch_uid=uid):
            found = True
            if s in (pre_save, post_save):
                need_atomic_save(sender, -1)
    return found


def _resolve(sender: Any) -> Any:
    """A lazy "app_label.Model" sender as its model, once the app registry is ready."""
    from django.apps import apps

    if isinstance(sender, str) and apps.ready:
        return apps.get_model(sender)
    return sender


def _is_connected(signal: Signal, sender: Any, uid: str) -> bool:
    from django.dispatch.dispatcher import _make_id

    key = (uid, _make_id(sender))
    return any(r_key == key for r_key, *_ in signal.receivers)


def _import_backend_tasks() -> None:
    # A Celery worker must know the task before the first message arrives:
    # the modules that define receivers are imported when Django starts, so
    # this registers it in every worker without any Celery configuration.
    try:
        from ...conf import conf

        if conf.BACKGROUND == "celery":
            from .tasks import celery_task

            celery_task()
    except Exception:  # settings not configured yet, or no Celery: found out when sending
        logger.debug("Celery task not registered at import", exc_info=True)


# --------------------------------------------------------------------------
# Writing a call, and handing it over after commit
# --------------------------------------------------------------------------


def write(registration: Registration, signal: Signal, sender: Any, kwargs: dict[str, Any]) -> None:
    """Write the pending call in the current transaction of the change's database."""
    from ...models import CallStatus, PendingCall

    instance = kwargs.get("instance")
    using = kwargs.get("using")
    if not isinstance(using, str):
        using = router.db_for_write(PendingCall)
    is_model = isinstance(instance, models.Model)
    now = timezone.now()
    row = PendingCall(
        receiver=registration.name,
        signal=signal_name(signal),
        model=instance._meta.label if is_model else "",
        object_pk=str(instance.pk) if is_model and instance.pk is not None else "",
        payload=calls.payload(signal, sender, kwargs),
        status=CallStatus.PENDING,
        created_at=now,
        next_attempt_at=now,
    )
    # bulk_create: an INSERT that sends no model signals.
    PendingCall.objects.using(using).bulk_create([row])
    call = calls.call_for(row, using)
    transaction.on_commit(functools.partial(send_now, call), using=using, robust=True)


def send_now(call: dict[str, Any]) -> bool:
    """Hand a committed call to the backend; on failure the relay will send it."""
    from ...conf import conf
    from ...models import CallStatus, PendingCall
    from .backends import send

    try:
        send(call)
    except Exception:
        logger.warning(
            "Could not hand %s (key %s) to the %s backend; `manage.py trail relay` will send it.",
            call["receiver"],
            call["key"],
            conf.BACKGROUND,
            exc_info=True,
        )
        return False
    # A worker may already have claimed the call, finished it, or failed it
    # (pending again, with attempts > 0 and its retry time): only a call no
    # worker has touched yet is marked as handed over.
    later = timezone.now() + datetime.timedelta(seconds=conf.RELAY_TIMEOUT)
    PendingCall.objects.using(call["db"]).filter(
        key=call["key"], status=CallStatus.PENDING, attempts=0
    ).update(status=CallStatus.ENQUEUED, next_attempt_at=later)
    return True


def retry(queryset: Any) -> int:
    """Send dead letters (and stuck pending calls) again, with a fresh set of attempts.

    Used by the admin's "retry" action. The calls are handed over after the
    current transaction commits; what fails is left to the relay.
    """
    from ...models import CallStatus

    db = queryset.db
    rows = list(queryset.filter(status__in=[CallStatus.DEAD, CallStatus.PENDING]))
    if not rows:
        return 0
    now = timezone.now()
    queryset.model._base_manager.using(db).filter(pk__in=[r.pk for r in rows]).update(
        status=CallStatus.PENDING, attempts=0, next_attempt_at=now
    )
    for row in rows:
        transaction.on_commit(
            functools.partial(send_now, calls.call_for(row, db)), using=db, robust=True
        )
    return len(rows)

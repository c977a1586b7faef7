"""``@on_commit``: receivers with side effects that must not outlive a rollback.

A ``post_save`` receiver that sends an email runs inside the transaction: if
the transaction later rolls back, the email is already gone for a row that
never existed. ``@on_commit(post_save, sender=Order)`` connects the function
so that it is *scheduled* when the signal is sent and *runs* only once the
surrounding transaction commits (right away in autocommit mode), through
Django's ``transaction.on_commit`` — so a rolled-back savepoint drops it too.

The receiver gets the state as of the signal: a shallow copy of ``instance``
(``copy.copy``) and of the other keyword arguments, so changes made to the
object between the signal and the commit don't leak into it.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger("signaltrail")

_UID = "signaltrail.on_commit"


def _signals(signal: Signal | Iterable[Signal]) -> tuple[Signal, ...]:
    signals = tuple(signal) if isinstance(signal, list | tuple) else (signal,)
    for s in signals:
        if not isinstance(s, Signal):
            raise TypeError(f"on_commit() takes django.dispatch.Signal objects, not {s!r}.")
    return signals


def _default_uid(func: Callable[..., Any]) -> str:
    # One connection per function object, like Django's own default (which
    # keys on id(receiver)); the function is strongly referenced, so its id
    # cannot be reused while it is connected.
    name = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"
    return f"{_UID}:{name}:{id(func):#x}"


def _as_of_now(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The signal's arguments, copied so later changes don't show."""
    kwargs = dict(kwargs)
    if kwargs.get("instance") is not None:
        kwargs["instance"] = copy.copy(kwargs["instance"])
    for key in ("pk_set", "update_fields"):
        if isinstance(kwargs.get(key), set | frozenset | list):
            kwargs[key] = type(kwargs[key])(kwargs[key])
    return kwargs


def on_commit(
    signal: Signal | Iterable[Signal],
    sender: Any = None,
    *,
    robust: bool = False,
    **connect_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Connect the decorated function to run after the transaction commits.

    ``signal`` may be a list of signals, as with Django's ``@receiver``.
    The callback is registered with ``transaction.on_commit(using=...)`` on
    the database alias the signal names in its ``using`` argument (model
    signals do), else the default database. It never runs if that
    transaction, or the savepoint the signal was sent in, rolls back.

    ``robust=False`` (Django's default): an exception in the receiver
    propagates out of the commit (the data is committed by then) and the
    remaining on-commit callbacks are skipped. ``robust=True``: the exception
    is logged on the ``signaltrail`` logger and the other callbacks run.

    The function is returned unchanged, so it can still be called directly
    in tests; it is connected with a strong reference (``weak=False``) and,
    unless ``dispatch_uid`` is given, a dispatch_uid derived from it, so it
    is connected once per function. Disconnect it with :func:`disconnect`.
    """
    signals = _signals(signal)
    if connect_kwargs.pop("weak", False):
        raise TypeError("on_commit() receivers are always strongly referenced; drop weak=True.")
    dispatch_uid = connect_kwargs.pop("dispatch_uid", None)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                f"on_commit() cannot run the coroutine function {func.__qualname__}: "
                "commit callbacks run synchronously. Use a sync function."
            )
        if not callable(func):
            raise TypeError(f"on_commit() decorates functions, not {func!r}.")

        @functools.wraps(func)
        def schedule(signal: Signal, sender: Any, **kwargs: Any) -> None:
            using = kwargs.get("using")
            callback = functools.partial(_run, func, robust, signal, sender, _as_of_now(kwargs))
            transaction.on_commit(callback, using=using if isinstance(using, str) else None)

        schedule._signaltrail_on_commit = func  # type: ignore[attr-defined]
        uid = dispatch_uid or _default_uid(func)
        for s in signals:
            s.connect(schedule, sender=sender, weak=False, dispatch_uid=uid, **connect_kwargs)
        return func

    return decorator


def _run(
    func: Callable[..., Any], robust: bool, signal: Signal, sender: Any, kwargs: dict[str, Any]
) -> None:
    try:
        func(signal=signal, sender=sender, **kwargs)
    except Exception:
        if not robust:
            raise
        logger.exception(
            "on_commit receiver %s.%s failed", func.__module__, getattr(func, "__qualname__", func)
        )


def disconnect(
    signal: Signal | Iterable[Signal],
    func: Callable[..., Any],
    sender: Any = None,
    dispatch_uid: str | None = None,
) -> bool:
    """Undo ``@on_commit(signal, sender=sender)`` for ``func``; True if it was connected."""
    uid = dispatch_uid or _default_uid(func)
    found = False
    for s in _signals(signal):
        found = bool(s.disconnect(sender=sender, dispatch_uid=uid)) or found
    return found

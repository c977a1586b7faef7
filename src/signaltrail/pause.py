"""``paused()``: skip recording in a block, without anything vanishing silently.

Inside the block tracked writes are not recorded; on exit one
``trail_paused`` event says who paused the trail, why, and how many writes of
each model were skipped.
"""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, models, router


@dataclass
class _Frame:
    """One ``paused()`` block as entered in one thread or task."""

    owner: paused
    parent: _Frame | None
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)


_frame: ContextVar[_Frame | None] = ContextVar("signaltrail_paused", default=None)


def is_paused() -> bool:
    return _frame.get() is not None


def count_skipped(model: type[models.Model], n: int = 1, using: str | None = None) -> None:
    frame = _frame.get()
    if frame is not None:
        alias = using or router.db_for_write(model) or DEFAULT_DB_ALIAS
        frame.skipped[(alias, model._meta.concrete_model._meta.label)] += n


class paused:
    """Skip recording inside the block; record one ``trail_paused`` event on exit.

    ``with signaltrail.paused(reason="fixture load"):``, ``async with`` in
    async code (the event is then written from a thread), or as a decorator
    of sync and async functions.
    The event's ``changes`` are ``{"skipped": {"app.Model": n}}`` and its
    context carries ``reason``.
    """

    def __init__(self, reason: str = "", **details: Any) -> None:
        self.reason = reason
        self.details = details

    def __enter__(self) -> paused:
        _frame.set(_Frame(owner=self, parent=_frame.get()))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        skipped = self._leave()
        if skipped is not None:
            self._record(skipped, failing=exc_type is not None)

    async def __aenter__(self) -> paused:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # In async code the trail_paused event is written from a thread, as
        # any ORM write must be.
        skipped = self._leave()
        if skipped is not None:
            await sync_to_async(self._record)(skipped, failing=exc_type is not None)

    def _leave(self) -> Counter[tuple[str, str]] | None:
        """End this block in the current thread/task; return what it skipped."""
        # The frames live in this thread's/task's own Context, not on self:
        # one paused() object may be entered by several workers at once.
        frame = _frame.get()
        while frame is not None and frame.owner is not self:
            frame = frame.parent
        if frame is None:
            return None
        _frame.set(frame.parent)
        return frame.skipped

    def _record(self, counter: Counter[tuple[str, str]], failing: bool) -> None:
        from .writer import Entry, write

        by_alias: dict[str, dict[str, int]] = {}
        for (alias, label), n in sorted(counter.items()):
            by_alias.setdefault(alias, {})[label] = n
        if not by_alias:
            by_alias[router.db_for_write(_event_model()) or DEFAULT_DB_ALIAS] = {}
        try:
            for alias, skipped in by_alias.items():
                write(
                    alias,
                    [
                        Entry(
                            "trail_paused",
                            changes={"skipped": skipped},
                            details={"reason": self.reason, **self.details},
                        )
                    ],
                    hold=True,
                )
        except Exception:
            if not failing:
                raise
            # Don't hide the error that ended the block (its transaction
            # may be unusable); that error is what the caller must see.

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                "signaltrail.paused() cannot decorate a generator function; "
                "use 'with signaltrail.paused(...):' inside it instead."
            )
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                async with paused(self.reason, **self.details):
                    return await func(*args, **kwargs)

            return async_inner

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with paused(self.reason, **self.details):
                return func(*args, **kwargs)

        return inner


def _event_model() -> type[models.Model]:
    from .models import Event

    return Event

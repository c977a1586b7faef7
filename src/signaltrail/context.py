"""Who is acting and why: the context carried by every recorded event.

The context lives in a :class:`contextvars.ContextVar`, so it follows the
code that runs: each thread and each asyncio task sees its own, and
``sync_to_async``/``async_to_sync`` carry it across. The actor may be given
lazily (a callable), so a request that writes nothing never resolves it and a
user authenticated inside the view (Django REST framework) is still seen.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.utils.encoding import force_str

from .conf import conf

_UNSET: Any = object()


@dataclass(frozen=True, eq=False)
class TrailContext:
    """An immutable snapshot of the current actor and metadata.

    ``parent`` is the context that was in force when this one was entered and
    ``owner`` the :class:`context` block that entered it: leaving a block
    restores its own parent even when one ``context`` object is entered by
    several threads or tasks at once (each has its own chain).
    """

    actor: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    parent: TrailContext | None = field(default=None, repr=False)
    owner: Any = field(default=None, repr=False)

    def merged(
        self, actor: Any = _UNSET, metadata: dict[str, Any] | None = None, owner: Any = None
    ) -> TrailContext:
        return TrailContext(
            actor=self.actor if actor is _UNSET else actor,
            metadata={**self.metadata, **(metadata or {})},
            parent=self,
            owner=owner,
        )


_EMPTY = TrailContext()
_current: ContextVar[TrailContext] = ContextVar("signaltrail_context", default=_EMPTY)


def current() -> TrailContext:
    """Return the context in force here (empty outside any ``context()``)."""
    return _current.get()


class context:
    """Set the actor and metadata for the events recorded inside the block.

    Usable as ``with signaltrail.context(actor=user, reason="import"):`` and as
    a decorator on sync or async functions. Blocks nest: inner values override
    outer ones and the outer context is restored on exit, also after an
    exception.
    """

    def __init__(self, actor: Any = _UNSET, **metadata: Any) -> None:
        self.actor = actor
        self.metadata = metadata

    def __enter__(self) -> TrailContext:
        new = _current.get().merged(self.actor, self.metadata, owner=self)
        _current.set(new)
        return new

    def __exit__(self, *exc_info: object) -> None:
        # No Token kept on self: a Token belongs to one thread/task's Context,
        # and this object may be entered by several at once (a module-level
        # ``context(source="import")`` used by concurrent workers). Walk this
        # Context's own chain to the block this object entered instead.
        entered = _current.get()
        while entered.parent is not None and entered.owner is not self:
            entered = entered.parent
        if entered.owner is self and entered.parent is not None:
            _current.set(entered.parent)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            # A generator runs in its consumer's context between steps: the
            # block would end before the first step (or leak into the consumer
            # while suspended). Refuse rather than record without the context.
            raise TypeError(
                "signaltrail.context() cannot decorate a generator function; "
                "use 'with signaltrail.context(...):' inside it instead."
            )
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with context(self.actor, **self.metadata):
                    return await func(*args, **kwargs)

            return async_inner

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with context(self.actor, **self.metadata):
                return func(*args, **kwargs)

        return inner


def resolve_actor(actor: Any) -> tuple[Any, str]:
    """Turn a context actor into ``(user instance or None, label)``.

    Accepts a user instance, a callable returning one (resolved now), a plain
    string naming a non-user actor ("cron", "payment-webhook"), or None.
    Anonymous users count as no actor.
    """
    if callable(actor) and not hasattr(actor, "_meta"):
        actor = actor()
    if actor is None or getattr(actor, "is_anonymous", False):
        return None, ""
    if isinstance(actor, str):
        return None, actor[: conf.REPR_MAX_LENGTH]
    label = actor_label(actor)
    if getattr(actor, "pk", None) is None:
        return None, label
    return actor, label


def actor_label(user: Any) -> str:
    """A text snapshot of who the actor was, kept after the user is gone."""
    try:
        label = user.get_username() if hasattr(user, "get_username") else user
        label = force_str(label)
    except Exception:
        label = repr(user)
    return label[: conf.REPR_MAX_LENGTH]

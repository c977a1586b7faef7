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
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from django.utils.encoding import force_str

from .conf import conf

_UNSET: Any = object()


@dataclass(frozen=True)
class TrailContext:
    """An immutable snapshot of the current actor and metadata."""

    actor: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def merged(self, actor: Any = _UNSET, metadata: dict[str, Any] | None = None) -> TrailContext:
        return TrailContext(
            actor=self.actor if actor is _UNSET else actor,
            metadata={**self.metadata, **(metadata or {})},
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
        self._tokens: list[Token[TrailContext]] = []

    def __enter__(self) -> TrailContext:
        new = _current.get().merged(self.actor, self.metadata)
        self._tokens.append(_current.set(new))
        return new

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._tokens.pop())

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
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

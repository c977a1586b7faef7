"""``muted()``: stop some signals' receivers, here only, for a while.

The usual way to silence a receiver — disconnecting it or swapping
``signal.receivers`` — is global: every other thread and request loses the
receiver too, a ``connect()`` racing with it is lost, and the sender is
ignored. ``muted()`` instead records what is muted in a ContextVar that the
dispatch hook (see ``_dispatch.py``) reads for every send, so the muting is
confined to the current thread or asyncio task and is undone on exit, even
after an exception.

The audit trail is never muted: receivers connected by signaltrail itself
(dispatch_uid ``signaltrail.capture…`` and ``signaltrail.auth``) still run,
so changes made under ``muted(post_save)`` are still recorded.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from django.dispatch import Signal

from . import _dispatch


def _signals(items: Iterable[Any]) -> tuple[Signal, ...]:
    found: list[Signal] = []
    for item in items:
        if isinstance(item, list | tuple):
            found.extend(_signals(item))
        elif isinstance(item, Signal):
            found.append(item)
        else:
            raise TypeError(f"muted() takes django.dispatch.Signal objects, not {item!r}.")
    return tuple(found)


class muted:
    """Don't run the receivers of ``signals`` in this thread / async context.

    ``with muted(post_save, sender=Order):`` stops the ``post_save`` receivers
    for saves of ``Order`` only; without ``sender`` every sender is muted.
    Works as a decorator on sync and async functions too. Blocks nest, and
    ``Signal.has_listeners()`` answers as if the muted receivers were not
    connected. asyncio tasks and ``sync_to_async`` calls started inside the
    block inherit it (that is how context variables work); plain threads
    started inside it do not.
    """

    def __init__(self, *signals: Signal | Iterable[Signal], sender: Any = None) -> None:
        self.signals = _signals(signals)
        if not self.signals:
            raise TypeError("muted() needs at least one signal, e.g. muted(post_save).")
        self.sender = sender

    def __enter__(self) -> muted:
        _dispatch.push(muted=tuple((signal, self.sender) for signal in self.signals))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _dispatch.pop()

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_inner

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return inner

    def __repr__(self) -> str:
        names = ", ".join(repr(s) for s in self.signals)
        return f"muted({names}, sender={self.sender!r})"


def is_muted(signal: Signal, sender: Any = None) -> bool:
    """Whether ``signal`` sent by ``sender`` is muted in the current context."""
    scope = _dispatch.current()
    return scope is not None and scope._is_muted(signal, sender)

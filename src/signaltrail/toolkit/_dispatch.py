"""The one hook through which ``muted()`` and ``trace()`` see signal dispatches.

Django's ``Signal.send``, ``send_robust``, ``asend``, ``asend_robust`` and
``has_listeners`` all ask ``self._live_receivers(sender)`` which receivers to
call. Wrapping that single method lets the toolkit drop muted receivers and
time traced ones *per call*, without ever editing ``Signal.receivers`` (a list
shared by every thread, so swapping it would leak muting into other requests
and race with ``connect()``).

What is active lives in a :class:`~contextvars.ContextVar`, so it follows the
running code: each thread and each asyncio task sees only its own blocks, and
``sync_to_async``/``async_to_sync`` carry it across. The hook is installed on
``Signal`` the first time a ``muted()`` or ``trace()`` block is entered; after
that a dispatch outside any block costs one extra call and one
``ContextVar.get()``. Subclasses that override ``_live_receivers`` without
calling ``super()`` are not seen (none in Django does).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

# Receivers connected with these dispatch_uid prefixes are the audit trail
# itself (model capture and auth events): muting never silences them.
TRAIL_UID_PREFIXES = ("signaltrail.capture", "signaltrail.auth")

Receivers = tuple[list[Any], list[Any]]
Wrapper = Callable[[Signal, list[Any], list[Any], tuple[Any, ...]], Receivers]


@dataclass(frozen=True, slots=True)
class Scope:
    """What is muted and who is tracing, in one context; ``parent`` is the outer block."""

    muted: tuple[tuple[Signal, Any], ...]  # (signal, sender or None for all senders)
    tracers: tuple[Any, ...]
    wrap: Wrapper | None  # how tracers wrap receivers (set by tracing.py)
    parent: Scope | None

    def apply(self, signal: Signal, sender: Any, receivers: Receivers) -> Receivers:
        sync, asynchronous = receivers
        if self.muted and self._is_muted(signal, sender):
            keep = _trail_receiver_ids(signal)
            sync = [r for r in sync if _make_id(r) in keep]
            asynchronous = [r for r in asynchronous if _make_id(r) in keep]
        if self.tracers and self.wrap is not None:
            sync, asynchronous = self.wrap(signal, sync, asynchronous, self.tracers)
        return sync, asynchronous

    def _is_muted(self, signal: Signal, sender: Any) -> bool:
        return any(s is signal and (f is None or f is sender) for s, f in self.muted)


_scope: ContextVar[Scope | None] = ContextVar("signaltrail_dispatch", default=None)
_install_lock = threading.Lock()


def _make_id(target: Any) -> Any:
    # Same identity Django uses for lookup keys (django.dispatch.dispatcher._make_id).
    if hasattr(target, "__func__"):
        return (id(target.__self__), id(target.__func__))
    return id(target)


def _trail_receiver_ids(signal: Signal) -> set[Any]:
    """Ids of the live receivers of ``signal`` that belong to the audit trail."""
    ids = set()
    for (uid, _sender_key), receiver, _sender_ref, _is_async in list(signal.receivers):
        if isinstance(uid, str) and uid.startswith(TRAIL_UID_PREFIXES):
            if isinstance(receiver, weakref.ReferenceType):
                receiver = receiver()
            if receiver is not None:
                ids.add(_make_id(receiver))
    return ids


def _hook(original: Callable[[Signal, Any], Receivers]) -> Callable[[Signal, Any], Receivers]:
    @functools.wraps(original)
    def _live_receivers(self: Signal, sender: Any) -> Receivers:
        scope = _scope.get()
        if scope is None:
            return original(self, sender)
        return scope.apply(self, sender, original(self, sender))

    _live_receivers._signaltrail_original = original  # type: ignore[attr-defined]
    return _live_receivers


def install() -> None:
    """Hook ``Signal._live_receivers`` once per process (idempotent, thread-safe)."""
    if hasattr(Signal.__dict__["_live_receivers"], "_signaltrail_original"):
        return
    with _install_lock:
        current = Signal.__dict__["_live_receivers"]
        if not hasattr(current, "_signaltrail_original"):
            Signal._live_receivers = _hook(current)  # type: ignore[method-assign]


def current() -> Scope | None:
    return _scope.get()


def push(
    muted: tuple[tuple[Signal, Any], ...] = (),
    tracer: Any = None,
    wrap: Wrapper | None = None,
) -> None:
    """Open a block in the current context, on top of the enclosing ones."""
    install()
    parent = _scope.get()
    tracers = parent.tracers if parent else ()
    if tracer is not None and not any(t is tracer for t in tracers):
        tracers = (*tracers, tracer)
    _scope.set(
        Scope(
            muted=(parent.muted if parent else ()) + muted,
            tracers=tracers,
            wrap=wrap or (parent.wrap if parent else None),
            parent=parent,
        )
    )


def pop() -> None:
    """Close the innermost block of the current context.

    Blocks close in the reverse order they opened (``with`` guarantees it), so
    the innermost one is the caller's. Restoring the parent, rather than
    keeping a ``Token`` on the block object, lets one ``muted(...)`` object be
    shared by several threads or tasks at once.
    """
    scope = _scope.get()
    _scope.set(scope.parent if scope is not None else None)

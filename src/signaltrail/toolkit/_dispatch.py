"""The one hook through which ``muted()`` and ``trace()`` see signal dispatches.

Django's ``Signal.send``, ``send_robust``, ``asend``, ``asend_robust`` and
``has_listeners`` all ask ``self._live_receivers(sender)`` which receivers to
call. Wrapping that single method lets the toolkit drop muted receivers and
time traced ones *per call*, without ever editing ``Signal.receivers`` (a list
shared by every thread, so swapping it would leak muting into other requests
and race with ``connect()``).

What is active lives in a :class:`~contextvars.ContextVar`, so it follows the
running code: each thread and each asyncio task sees only its own blocks, and
``sync_to_async``/``async_to_sync`` carry it across.

The hook is on ``Signal`` only while some block's scope is reachable from some
context: it goes in when the first block opens and Django's own method comes
back when the last scope is released, so a process that is not muting or
tracing right now dispatches exactly as plain Django does. "Reachable" rather
than "open" because an asyncio task (or a copied context) started inside a
block inherits its scope and may outlive the ``with``: it stays muted or
traced until it finishes, as it would if the hook never left. While a block
is open elsewhere, a dispatch outside any block costs one extra call and one
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


@dataclass(frozen=True, slots=True, weakref_slot=True)
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
# Re-entrant: a scope can be freed (and _release() run) by the garbage
# collector at any allocation, including one made while this lock is held.
_lock = threading.RLock()
_reachable = 0  # scopes alive anywhere in the process


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


def installed() -> bool:
    """Whether ``Signal._live_receivers`` is the toolkit's hook right now."""
    return _installed is not None and Signal.__dict__["_live_receivers"] is _installed


_installed: Callable[[Signal, Any], Receivers] | None = None


def _acquire(scope: Scope) -> None:
    """Count ``scope`` as reachable until it is freed; hook ``Signal`` if it is the first."""
    global _reachable, _installed
    with _lock:
        _reachable += 1
        if _installed is None:
            _installed = _hook(Signal.__dict__["_live_receivers"])
            Signal._live_receivers = _installed  # type: ignore[method-assign]
    weakref.finalize(scope, _release)


def _release() -> None:
    """Give Django its own method back once no scope is reachable anywhere.

    Only our own hook is taken out: if something wrapped ``_live_receivers``
    after us, both stay (ours inert outside blocks, and never installed twice).
    """
    global _reachable, _installed
    with _lock:
        _reachable -= 1
        if _reachable == 0 and installed():
            Signal._live_receivers = _installed._signaltrail_original  # type: ignore[union-attr, method-assign]
            _installed = None


def current() -> Scope | None:
    return _scope.get()


def push(
    muted: tuple[tuple[Signal, Any], ...] = (),
    tracer: Any = None,
    wrap: Wrapper | None = None,
) -> None:
    """Open a block in the current context, on top of the enclosing ones."""
    parent = _scope.get()
    tracers = parent.tracers if parent else ()
    if tracer is not None and not any(t is tracer for t in tracers):
        tracers = (*tracers, tracer)
    scope = Scope(
        muted=(parent.muted if parent else ()) + muted,
        tracers=tracers,
        wrap=wrap or (parent.wrap if parent else None),
        parent=parent,
    )
    _acquire(scope)
    _scope.set(scope)


def pop() -> None:
    """Close the innermost block of the current context.

    Blocks close in the reverse order they opened (``with`` guarantees it), so
    the innermost one is the caller's. Restoring the parent, rather than
    keeping a ``Token`` on the block object, lets one ``muted(...)`` object be
    shared by several threads or tasks at once.
    """
    scope = _scope.get()
    _scope.set(scope.parent if scope is not None else None)

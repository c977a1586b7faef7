"""``trace()``: which receivers ran in a block, how long each took, what failed.

Signals make control flow invisible: ``obj.save()`` may run a dozen receivers
in as many modules. ``with trace() as t:`` records one :class:`TraceRecord`
per receiver call in the block — for ``send``, ``send_robust``, ``asend`` and
``asend_robust``, model signals and custom ones alike — and only for the
current thread / async context. It rides on the same dispatch hook as
``muted()``: outside a block, tracing costs a single ``ContextVar.get()``.

:class:`TraceMiddleware` traces each request when
``SIGNALTRAIL["TRACE_REQUESTS"]`` is true and logs one JSON line per request
to the ``signaltrail.trace`` logger.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.dispatch import Signal

from . import _dispatch
from .naming import receiver_name, sender_label, signal_name

logger = logging.getLogger("signaltrail.trace")


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One receiver call."""

    signal: str  # dotted name, e.g. "django.db.models.signals.post_save"
    sender: str  # model label, or repr() of any other sender
    receiver: str  # "module.qualname"
    duration_ms: float
    exception: str | None  # repr() of what the receiver raised, if anything


class _Traced:
    """Calls a receiver and records the call in every active trace.

    It stands in for the receiver in Django's dispatch loop, so it compares
    equal to it (``send()``'s ``[(receiver, response)]`` pairs still match the
    user's function) and carries its ``__qualname__`` (which ``send_robust``
    logs).
    """

    def __init__(self, receiver: Any, signal: Signal, tracers: tuple[trace, ...]) -> None:
        functools.update_wrapper(self, receiver, updated=())
        self._receiver = receiver
        self._signal = signal
        self._tracers = tracers

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Traced):
            other = other._receiver
        return bool(self._receiver == other)

    def __hash__(self) -> int:
        return hash(self._receiver)

    def __repr__(self) -> str:
        return f"<traced {self._receiver!r}>"

    def _record(self, sender: Any, started: float, error: BaseException | None) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        record = TraceRecord(
            signal=signal_name(self._signal),
            sender=sender_label(sender),
            receiver=receiver_name(self._receiver),
            duration_ms=duration_ms,
            exception=None if error is None else repr(error),
        )
        for tracer in self._tracers:
            tracer.records.append(record)


class _TracedSync(_Traced):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = self._receiver(*args, **kwargs)
        except BaseException as error:
            self._record(kwargs.get("sender"), started, error)
            raise
        self._record(kwargs.get("sender"), started, None)
        return result


class _TracedAsync(_Traced):
    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await self._receiver(*args, **kwargs)
        except BaseException as error:
            self._record(kwargs.get("sender"), started, error)
            raise
        self._record(kwargs.get("sender"), started, None)
        return result


def _wrap(
    signal: Signal, sync: list[Any], asynchronous: list[Any], tracers: tuple[Any, ...]
) -> tuple[list[Any], list[Any]]:
    return (
        [_TracedSync(r, signal, tracers) for r in sync],
        [_TracedAsync(r, signal, tracers) for r in asynchronous],
    )


class trace:
    """Record every receiver call made in the block, in this context only.

    ``with trace() as t:`` then iterate ``t`` for :class:`TraceRecord` objects
    (in the order the calls finished). Blocks nest: an outer trace also sees
    what an inner one records. Receivers muted by ``muted()`` don't run and
    are not recorded.
    """

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def __enter__(self) -> trace:
        _dispatch.push(tracer=self, wrap=_wrap)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _dispatch.pop()

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(list(self.records))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def total_ms(self) -> float:
        return sum(r.duration_ms for r in self.records)

    def slowest(self, n: int = 5) -> list[TraceRecord]:
        return sorted(self.records, key=lambda r: r.duration_ms, reverse=True)[:n]

    def __repr__(self) -> str:
        return f"<trace: {len(self.records)} receiver calls, {self.total_ms:.3f} ms>"


# --------------------------------------------------------------------------
# Per-request tracing
# --------------------------------------------------------------------------


class TraceMiddleware:
    """Log the receivers each request ran, when ``SIGNALTRAIL["TRACE_REQUESTS"]`` is on.

    One INFO line per request on the ``signaltrail.trace`` logger, a JSON
    object with ``request_id`` (from signaltrail's context or the response's
    request-id header), ``method``, ``path``, ``count``, ``total_ms`` and the
    ``slowest`` receivers; the same dict is attached as ``record.signaltrail_trace``.
    The setting is read on every request, so it can be flipped without a
    restart. Works in sync and async stacks; place it after ``TrailMiddleware``.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any | Awaitable[Any]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if not _enabled():
            return self.get_response(request)
        request_id = _request_id()
        with trace() as t:
            response = self.get_response(request)
        _log(t, request, response, request_id)
        return response

    async def __acall__(self, request: Any) -> Any:
        if not _enabled():
            return await self.get_response(request)  # type: ignore[misc]
        request_id = _request_id()
        with trace() as t:
            response = await self.get_response(request)  # type: ignore[misc]
        _log(t, request, response, request_id)
        return response


def _enabled() -> bool:
    from signaltrail.conf import conf

    return bool(conf.TRACE_REQUESTS)


def _request_id() -> Any:
    from signaltrail.context import current

    return current().metadata.get("request_id")


def _log(t: trace, request: Any, response: Any, request_id: Any) -> None:
    from signaltrail.conf import conf

    header = conf.REQUEST_ID_HEADER
    if request_id is None and header and hasattr(response, "headers"):
        request_id = response.headers.get(header)
    data = {
        "request_id": request_id,
        "method": getattr(request, "method", None),
        "path": getattr(request, "path", None),
        "count": len(t),
        "total_ms": round(t.total_ms, 3),
        "slowest": [{**asdict(r), "duration_ms": round(r.duration_ms, 3)} for r in t.slowest(5)],
    }
    logger.info(json.dumps(data, default=str), extra={"signaltrail_trace": data})

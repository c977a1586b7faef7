"""Running one call in a worker: claim it, call the receiver, record the outcome.

A call may arrive more than once (the on-commit hand-over and the relay can
both send it; the relay sends again what seems lost). The outbox row decides:

1. Claim: one UPDATE moves the row from pending/enqueued to running. Only one
   delivery can win it; the others find it running, or gone, and do nothing.
2. Call the receiver, outside any transaction of ours.
3. Success: delete the row. Failure: count the attempt, and either schedule a
   retry (exponential backoff) or park the call as a dead letter.

A worker that dies during step 2 leaves the row running; the relay sends it
again once ``RELAY_TIMEOUT`` has passed. So a receiver may run twice for one
call: it gets ``idempotency_key`` to make its effects happen once.
"""

from __future__ import annotations

import datetime
import logging
import random
import traceback
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import F
from django.utils import timezone

from . import calls

logger = logging.getLogger("signaltrail.background")

ERROR_MAX_LENGTH = 20_000


class UnknownReceiver(LookupError):
    """The call names a function that is not an ``@in_background`` receiver."""


def backoff(attempts: int) -> datetime.timedelta:
    """How long to wait before attempt ``attempts + 1``: doubling, capped, with 10% jitter."""
    from ...conf import conf

    base = float(conf.RELAY_BACKOFF)
    delay = min(base * 2 ** max(attempts - 1, 0), float(conf.RELAY_BACKOFF_MAX))
    return datetime.timedelta(seconds=delay * (1 + random.random() / 10))


def resolve(name: str) -> Any:
    """The ``@in_background`` function called ``name``, importing its module if needed."""
    import importlib

    from .outbox import receivers

    registration = receivers.get(name)
    if registration is None:
        module = name.rpartition(".")[0]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownReceiver(f"Cannot import {module!r} to find {name}: {exc}") from exc
        registration = receivers.get(name)
    if registration is None:
        raise UnknownReceiver(
            f"{name} is not an @in_background receiver (or no longer is): refusing to call it."
        )
    return registration.func


def execute(call: dict[str, Any]) -> dict[str, Any]:
    """Run one call; returns what happened, for the task backend's result."""
    from ...conf import conf
    from ...models import CallStatus, PendingCall

    db, key = call["db"], call["key"]
    rows = PendingCall.objects.using(db).filter(key=key)
    now = timezone.now()
    claimed = rows.filter(status__in=[CallStatus.PENDING, CallStatus.ENQUEUED]).update(
        status=CallStatus.RUNNING,
        attempts=F("attempts") + 1,
        next_attempt_at=now + datetime.timedelta(seconds=conf.RELAY_TIMEOUT),
    )
    if not claimed:
        logger.info("%s (key %s): done or running elsewhere; skipped", call["receiver"], key)
        return {"key": key, "outcome": "skipped"}
    try:
        func = resolve(call["receiver"])
        kwargs = calls.receiver_kwargs(call)
        if _is_async(func):
            async_to_sync(func)(**kwargs)
        else:
            func(**kwargs)
    except Exception as exc:
        return {"key": key, "outcome": fail(db, key, exc)}
    rows.delete()
    logger.info("%s (key %s): done", call["receiver"], key)
    return {"key": key, "outcome": "done"}


def fail(db: str, key: str, exc: BaseException | str) -> str:
    """Record a failed attempt: retry later, or park as a dead letter. Returns which."""
    from ...conf import conf
    from ...models import CallStatus, PendingCall

    rows = PendingCall.objects.using(db).filter(key=key)
    found = rows.values_list("attempts", "receiver").first()
    if found is None:
        return "gone"
    attempts, receiver = found
    error = "".join(traceback.format_exception(exc)) if isinstance(exc, BaseException) else exc
    error = error[-ERROR_MAX_LENGTH:]
    now = timezone.now()
    if attempts >= int(conf.RELAY_MAX_ATTEMPTS):
        rows.update(status=CallStatus.DEAD, next_attempt_at=now, last_error=error)
        logger.error(
            "%s (key %s) failed %d times; parked as a dead letter:\n%s",
            receiver,
            key,
            attempts,
            error,
        )
        return "dead"
    retry_at = now + backoff(attempts)
    rows.update(status=CallStatus.PENDING, next_attempt_at=retry_at, last_error=error)
    logger.warning(
        "%s (key %s) failed (attempt %d of %d); retry at %s:\n%s",
        receiver,
        key,
        attempts,
        conf.RELAY_MAX_ATTEMPTS,
        retry_at.isoformat(),
        error,
    )
    return "retry"


def _is_async(func: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(func)

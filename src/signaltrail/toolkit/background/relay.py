"""``manage.py trail relay``: send the calls the on-commit hand-over left behind.

A call is due for the relay when its row is

- pending: written but never handed over (the process died after the
  commit, or the backend was down), or a failed call whose retry time came;
- enqueued or running for longer than ``RELAY_TIMEOUT``: presumed lost (the
  broker dropped it, the worker died).

``RELAY_GRACE`` seconds are added to every deadline, so that the relay does
not race the on-commit hand-over of a call just written. Each row is claimed
with one conditional UPDATE before it is sent, so several relays can run at
once without sending a call twice (and a duplicate would be harmless: the
worker claims the call again before running it).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections, router
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from . import calls, worker

logger = logging.getLogger("signaltrail.background")


@dataclass
class Report:
    """What one or more passes did."""

    sent: int = 0  # handed to the backend
    retry: int = 0  # could not be handed over: retried later
    dead: int = 0  # parked as dead letters
    errors: list[str] = field(default_factory=list)  # databases that could not be read

    def __iadd__(self, other: Report) -> Report:
        self.sent += other.sent
        self.retry += other.retry
        self.dead += other.dead
        self.errors += other.errors
        return self

    @property
    def busy(self) -> bool:
        return bool(self.sent or self.retry or self.dead or self.errors)

    def __str__(self) -> str:
        # Shown by ``manage.py trail relay``, in the active language.
        return _("sent %(sent)d, to retry %(retry)d, dead %(dead)d") % {
            "sent": self.sent,
            "retry": self.retry,
            "dead": self.dead,
        }


def databases() -> list[str]:
    """The aliases that may hold an outbox table (where signaltrail is migrated)."""
    from ...models import PendingCall

    return [alias for alias in connections if router.allow_migrate_model(alias, PendingCall)]


def relay_pass(
    db: str,
    *,
    batch: int = 100,
    grace: float | None = None,
    now: datetime.datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[Report, int]:
    """Send up to ``batch`` due calls of database ``db``; returns (report, rows looked at)."""
    from ...conf import conf
    from ...models import CallStatus, PendingCall

    now = now or timezone.now()
    grace = float(conf.RELAY_GRACE if grace is None else grace)
    active = [CallStatus.PENDING, CallStatus.ENQUEUED, CallStatus.RUNNING]
    due = list(
        PendingCall.objects.using(db)
        .filter(status__in=active, next_attempt_at__lte=now - datetime.timedelta(seconds=grace))
        .order_by("next_attempt_at", "id")[:batch]
    )
    report = Report()
    for row in due:
        if should_stop():
            break
        outcome = deliver(row, db, now)
        if outcome == "sent":
            report.sent += 1
        elif outcome == "retry":
            report.retry += 1
        elif outcome == "dead":
            report.dead += 1
    return report, len(due)


def deliver(row: Any, db: str, now: datetime.datetime) -> str:
    """Claim and send one due row: "sent", "retry", "dead" or "taken" (by someone else)."""
    from ...conf import conf
    from ...models import CallStatus, PendingCall
    from .backends import send

    rows = PendingCall.objects.using(db).filter(
        pk=row.pk, status=row.status, next_attempt_at=row.next_attempt_at
    )
    if row.status == CallStatus.RUNNING and row.attempts >= int(conf.RELAY_MAX_ATTEMPTS):
        error = (
            f"No result {conf.RELAY_TIMEOUT} s after attempt {row.attempts} started: "
            "the worker died or the call took longer than SIGNALTRAIL['RELAY_TIMEOUT']."
        )
        parked = rows.update(status=CallStatus.DEAD, next_attempt_at=now, last_error=error)
        if parked:
            logger.error("%s (key %s): %s Parked as a dead letter.", row.receiver, row.key, error)
        return "dead" if parked else "taken"
    timeout = datetime.timedelta(seconds=conf.RELAY_TIMEOUT)
    if not rows.update(status=CallStatus.ENQUEUED, next_attempt_at=now + timeout):
        return "taken"
    try:
        send(calls.call_for(row, db))
    except Exception as exc:
        # A call the backend keeps refusing must not be retried forever:
        # a failed hand-over counts as an attempt.
        PendingCall.objects.using(db).filter(pk=row.pk).update(attempts=F("attempts") + 1)
        return "dead" if worker.fail(db, str(row.key), exc) == "dead" else "retry"
    return "sent"


def counts(db: str) -> dict[str, int]:
    """Rows per status on ``db`` (for the summary)."""
    from django.db.models import Count

    from ...models import PendingCall

    found = PendingCall.objects.using(db).values("status").annotate(n=Count("id")).order_by()
    return {row["status"]: row["n"] for row in found}


def run(
    dbs: list[str],
    *,
    once: bool = False,
    batch: int = 100,
    interval: float = 1.0,
    grace: float | None = None,
    stop: threading.Event | None = None,
    out: Callable[[str], None] = print,
) -> Report:
    """Relay until ``stop`` is set (or, with ``once``, until nothing is due)."""
    stop = stop or threading.Event()
    total = Report()
    while not stop.is_set():
        _close_old_connections()
        report = Report()
        for db in dbs:
            try:
                while not stop.is_set():
                    done, looked_at = relay_pass(
                        db, batch=batch, grace=grace, should_stop=stop.is_set
                    )
                    report += done
                    if looked_at < batch:
                        break
            except DatabaseError as exc:
                logger.exception("Relay: cannot read the outbox of database %r", db)
                report.errors.append(f"{db}: {exc}")
                out(_("error: database %(db)r: %(error)s") % {"db": db, "error": exc})
        total += report
        if report.busy and not once:
            out(f"{timezone.now():%Y-%m-%d %H:%M:%S} {report}")
        if once:
            break
        stop.wait(interval)
    return total


def _close_old_connections() -> None:
    # A long-running relay outlives database restarts and CONN_MAX_AGE, as
    # Django's request cycle does; a connection inside a transaction (a test,
    # or a caller's atomic block) is left alone.
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, on_stop: Callable[[str], None]) -> Iterator[None]:
    """SIGTERM and Ctrl-C finish the call being sent, then stop; a second Ctrl-C aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        on_stop(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)

"""Events held until their transaction commits, then inserted together.

Inside ``atomic()``, the events of single saves, deletions and m2m changes
are not inserted one by one: they wait here, per connection, and go into
the database in one multi-row INSERT just before the transaction commits
(on PostgreSQL with psycopg 3, in the same round trip as the COMMIT). Ten
saves in one transaction then cost ten row writes and one INSERT of events
instead of twenty statements; a ``delete()`` or an m2m ``add()``, whose
transaction Django opens itself, costs no round trip of its own.

What can be observed:

- the events commit with the change or not at all: they are inserted
  inside the transaction, and if that fails (or anything raises while they
  are inserted) the transaction rolls back;
- the transaction's own queries see them: any SQL that names the event
  table, in any case (an ``Event`` queryset, a subquery, raw SQL through
  Django's cursor), first inserts what waits, through an execute wrapper set
  on the connection only while something waits. SQL that reads the table
  without naming it - a view, a database function or trigger - does not
  see them until then (README, "Known limits");
- a rolled-back transaction or savepoint drops its events. So that a
  savepoint's rollback never drops events recorded before it, what waits is
  inserted before a savepoint is created: every held event is then newer
  than every savepoint that can still be rolled back to.

Held events are inserted early when there are :data:`LIMIT` of them, so a
long transaction keeps memory bounded. The chain (``prev_hash`` and
``hash``) is computed when they are inserted (:func:`writer.insert_rows`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

LIMIT = 1000  # events held per connection before they are inserted anyway

_HELD = "_signaltrail_held"  # (transaction marker, rows, execute wrapper)


def can_hold(connection: Any) -> bool:
    """Whether ``connection`` is inside ``atomic()`` opened in autocommit mode.

    Only there is the end of the transaction known to go through
    ``commit()`` or a rollback; with autocommit turned off by hand, turning
    it back on commits too (SQLite, MySQL), so events are written at once.
    """
    return connection.in_atomic_block and connection.commit_on_exit


def hold(connection: Any, rows: list[Any]) -> None:
    """Keep ``rows`` until the transaction open on ``connection`` commits."""
    held = _current(connection)
    if held is None:
        wrapper = functools.partial(_before_query, connection)
        held = connection.__dict__[_HELD] = (connection.run_on_commit, [], wrapper)
        # First in the list: Django's execute_wrapper() pops the last one
        # when its block ends, which stays the project's own.
        connection.execute_wrappers.insert(0, wrapper)
    held[1].extend(rows)
    if len(held[1]) >= LIMIT:
        flush(connection)


def flush(connection: Any, commit: bool = False) -> None:
    """Insert the events held on ``connection``, if its transaction is the same.

    ``commit``: the transaction commits right after. A failed INSERT inside
    ``atomic()`` marks the transaction for rollback, as Django does for any
    error inside it, so its changes cannot commit without their events.
    """
    held = _current(connection)
    if held is None:
        return
    _drop(connection)
    rows = held[1]
    if not rows:
        return
    from .writer import insert_rows

    try:
        insert_rows(connection, rows, commit=commit)
    except Exception:
        if connection.in_atomic_block:
            connection.needs_rollback = True
        raise


def _current(connection: Any) -> Any:
    """What is held for the open transaction, or None.

    Events held by a transaction that has rolled back (or a savepoint rolled
    back since: Django replaced its on-commit list) are dropped with it.
    """
    held = connection.__dict__.get(_HELD)
    if held is not None and held[0] is not connection.run_on_commit:
        _drop(connection)
        return None
    return held


def _drop(connection: Any) -> None:
    held = connection.__dict__.pop(_HELD, None)
    if held is not None:
        with contextlib.suppress(ValueError):  # removed by hand
            connection.execute_wrappers.remove(held[2])


def _before_query(
    connection: Any, execute: Any, sql: Any, params: Any, many: bool, context: Any
) -> Any:
    """Execute wrapper: insert what waits before SQL that may read the events."""
    if (
        _current(connection) is not None
        and not connection.needs_rollback
        and (type(sql) is not str or _event_table() in sql.lower())
    ):
        flush(connection)
    return execute(sql, params, many, context)


@functools.cache
def _event_table() -> str:
    from .models import Event

    return Event._meta.db_table.lower()


def install() -> None:
    """Insert held events before a commit and before a savepoint, once."""
    original_commit = BaseDatabaseWrapper.commit
    if getattr(original_commit, "_signaltrail", False):
        return
    original_savepoint = BaseDatabaseWrapper.savepoint

    @functools.wraps(original_commit)
    def commit(self: BaseDatabaseWrapper) -> None:
        # Inside atomic(), Django refuses to commit: so must the INSERT.
        if _HELD in self.__dict__ and not self.in_atomic_block:
            from . import integrity

            try:
                with integrity.committing(self):
                    flush(self, commit=True)
            except BaseException:
                # atomic() rolls back after a DatabaseError only: whatever
                # failed (an execute wrapper refusing writes, say), the
                # transaction must not commit, nor stay open, without its events.
                try:
                    self.rollback()
                except Exception:
                    self.close()
                raise
        original_commit(self)

    @functools.wraps(original_savepoint)
    def savepoint(self: BaseDatabaseWrapper) -> Any:
        if _HELD in self.__dict__:
            flush(self)
        return original_savepoint(self)

    commit._signaltrail = True  # type: ignore[attr-defined]
    BaseDatabaseWrapper.commit = commit  # type: ignore[method-assign]
    BaseDatabaseWrapper.savepoint = savepoint  # type: ignore[method-assign]

"""BEGIN sent with the first statement of a write's own transaction.

In autocommit mode a tracked save opens ``atomic()`` so that its row and its
event commit together. On PostgreSQL, psycopg sends that transaction's BEGIN
as a round trip of its own before the first statement; the event's INSERT
already carries the COMMIT (:mod:`signaltrail.held`). With psycopg 3's
client-side binding (Django's default), one message may hold several
statements, so here the BEGIN travels with the first statement: a create
then costs two round trips instead of three. An update goes further
(:func:`along`): its event is known before its UPDATE is sent, so the
UPDATE and the event go as one statement, which commits on its own.

A transaction rides only where nothing of the project's runs between its
``atomic()`` and Django's first statement but the fields' ``pre_save``: a
save's own transaction; ``add()`` on a tracked many-to-many relation, whose
first statement is Django's SELECT of the rows already related; a deletion
when nothing but the trail receives ``pre_delete``. ``remove()`` and
``clear()`` are left alone: Django sends ``m2m_changed`` before its first
statement there, and a receiver may use the transaction before any
statement of Django's (a server-side cursor, the raw psycopg connection).

How: while :func:`riding` is active, the PostgreSQL backend's
``_set_autocommit(False)`` leaves psycopg in autocommit mode and sets an
execute wrapper that sends ``BEGIN; <statement>`` for the next statement
(and moves the cursor to that statement's result). Django's own bookkeeping
does not change: it sees its transaction open, commits or rolls back through
psycopg as usual (psycopg sends COMMIT or ROLLBACK whenever the server has a
transaction open), and savepoints inside work as before. Only plain BEGIN is
sent this way: with an isolation level, read-only or deferrable transaction
configured, psycopg sends its own BEGIN, as without the trail; so it does
when the connection has execute wrappers (``connection.execute_wrapper()``):
they see the statements, and the transaction, exactly as without the trail.
The first statement is sent after a BEGIN of its own when it cannot carry
one (``executemany``, a server-side cursor, an execute wrapper added since),
and again after one when it failed before BEGIN ran.

What stays different, in the code a save runs before its first statement
(the fields' ``pre_save`` and ``get_db_prep_*``, a pk's default): a write
through the raw psycopg connection there is not part of the transaction
yet, and a server-side cursor declared in the transaction is ``WITH HOLD``
(Django decides from psycopg's autocommit flag). README, "Known limits";
``SIGNALTRAIL["POSTGRES_BEGIN_WITH_ROW"] = False`` turns all this off.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .conf import conf
from .inserts import _client_cursor_class, statements

_RIDING = "_signaltrail_riding"  # set while the next transaction's BEGIN may ride
_ARMED = "_signaltrail_begin_wrapper"  # the execute wrapper, while armed
_ALONG = "_signaltrail_along"  # an event for the first statement to carry, if an UPDATE


@dataclass
class Along:
    """An event offered to the first statement of a save's own transaction.

    Taken only by an UPDATE of the row's table (``update``: how its SQL
    starts); ``sent`` tells whether it went in, with the row.
    """

    update: str
    params: tuple[Any, ...]
    sent: bool = False


_NOTHING = contextlib.nullcontext()


def riding(connection: Any) -> contextlib.AbstractContextManager[None]:
    """Inside: the ``atomic()`` opened next, in autocommit, sends BEGIN with its first statement.

    Nothing happens when a transaction is already open, or on another
    database than PostgreSQL with psycopg 3's client-side cursors.
    """
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or not connection.get_autocommit()
        or conf.POSTGRES_BEGIN_WITH_ROW is not True
        or not _client_side(connection)
    ):
        return _NOTHING
    return _riding(connection)


@contextlib.contextmanager
def _riding(connection: Any) -> Iterator[None]:
    state = connection.__dict__
    state[_RIDING] = True
    try:
        yield
    finally:
        state.pop(_RIDING, None)
        _disarm(connection)


def armed(connection: Any) -> bool:
    """Whether the open transaction's BEGIN is still waiting for its first statement."""
    return _ARMED in connection.__dict__


@contextlib.contextmanager
def along(connection: Any, table: str, params: tuple[Any, ...]) -> Iterator[Along]:
    """Inside: an UPDATE of ``table`` sent first in the transaction carries the event.

    ``params``: the event's column values. The UPDATE goes as one statement,
    ``WITH row AS (<UPDATE> RETURNING 1), new AS (INSERT INTO <events>
    SELECT ... FROM row LIMIT 1) SELECT 1 FROM row``, which PostgreSQL runs
    (in autocommit) as a transaction of its own: one round trip for the row,
    its event and the commit, without a BEGIN or COMMIT statement to run.
    The event is inserted only if the UPDATE matched the row, and the
    statement's row count (what Django reads) is the UPDATE's. Anything
    else sent first takes no event; ``Along.sent`` stays False and the
    event is written as usual.
    """
    offer = Along(f"UPDATE {connection.ops.quote_name(table)} SET ", params)
    connection.__dict__[_ALONG] = offer
    try:
        yield offer
    finally:
        connection.__dict__.pop(_ALONG, None)


def _with_event(
    connection: Any, execute: Any, sql: str, params: Any, many: bool, context: Any, offer: Along
) -> Any:
    """Send the UPDATE with its event, as one statement (see :func:`along`)."""
    from psycopg.pq import TransactionStatus

    pieces = statements(connection)
    combined = f"{pieces['along_head']}{sql}{pieces['along_tail']}"
    try:
        result = execute(combined, (*(params or ()), *offer.params), many, context)
    except Exception as error:
        # One statement in autocommit: nothing of it stays, and no
        # transaction is open.
        if connection.connection.info.transaction_status != TransactionStatus.IDLE:
            raise
        if _sqlstate(error) not in _NOT_IN_WITH:
            # Whatever failed (a value psycopg can't send, a constraint, a
            # trigger, a deferred check at its commit) fails the UPDATE
            # alone too: the save fails with that error, as without the
            # trail.
            raise
        # PostgreSQL refuses this UPDATE inside WITH only: the row is sent
        # again alone, in a transaction, and its event goes the usual way.
        _begin(connection)
        return execute(sql, params, many, context)
    if context["cursor"].cursor.rowcount > 0:
        offer.sent = True
    else:
        # No row matched: the statement committed nothing and is over.
        # Django goes on (an INSERT follows) inside atomic(): open another.
        _begin(connection)
    return result


# SQLSTATEs of an UPDATE PostgreSQL may run alone but not in a WITH clause:
# feature_not_supported (DO ALSO / conditional DO INSTEAD rules, a view's
# rule without RETURNING), insufficient_privilege (a row security policy
# applied to RETURNING).
_NOT_IN_WITH = frozenset({"0A000", "42501"})


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a server error (Django's wrapper or psycopg's own)."""
    for candidate in (error, error.__cause__):
        code = getattr(candidate, "sqlstate", None)
        if code:
            return str(code)
    return None


def _client_side(connection: Any) -> bool:
    client_cursor = _client_cursor_class()
    raw = connection.connection
    factory = getattr(raw, "cursor_factory", None)
    return (
        client_cursor is not None
        and isinstance(factory, type)
        and issubclass(factory, client_cursor)
        and raw.isolation_level is None
        and raw.read_only is None
        and raw.deferrable is None
    )


def _first_statement(
    connection: Any, execute: Any, sql: Any, params: Any, many: bool, context: Any
) -> Any:
    """Execute wrapper: open the transaction with this statement, then step aside."""
    own = connection.execute_wrappers[-1:] == [connection.__dict__.get(_ARMED)]
    _disarm(connection)
    client_cursor = _client_cursor_class()
    if (
        many
        or type(sql) is not str
        or not own  # a wrapper added since would see "BEGIN; ..."
        or not isinstance(context["cursor"].cursor, client_cursor)  # a server-side cursor
    ):
        _begin(connection)
        return execute(sql, params, many, context)
    offer = connection.__dict__.pop(_ALONG, None)
    if offer is not None and sql.startswith(offer.update):
        return _with_event(connection, execute, sql, params, many, context, offer)
    from psycopg.pq import TransactionStatus

    try:
        result = execute("BEGIN; " + sql, params, many, context)
    except Exception:
        if connection.connection.info.transaction_status != TransactionStatus.IDLE:
            raise  # BEGIN ran: the statement failed inside the transaction
        # Refused before BEGIN ran: by psycopg (a value it can't send) or
        # while PostgreSQL parsed the message (a syntax error). Open the
        # transaction Django believes open, then run the statement again in
        # it, alone: it fails the same way, leaving the transaction as it
        # would be without the trail (aborted after a server error).
        _begin(connection)
        return execute(sql, params, many, context)
    context["cursor"].cursor.nextset()  # to the statement's own result
    return result


def _begin(connection: Any) -> None:
    with connection.wrap_database_errors:
        connection.connection.execute("BEGIN")


def _disarm(connection: Any) -> None:
    wrapper = connection.__dict__.pop(_ARMED, None)
    if wrapper is not None:
        with contextlib.suppress(ValueError):
            connection.execute_wrappers.remove(wrapper)


def install() -> None:
    """Wrap the PostgreSQL backend's ``_set_autocommit``, once (if it is importable)."""
    try:
        from django.db.backends.postgresql.base import DatabaseWrapper
        from psycopg.pq import TransactionStatus
    except Exception:  # no PostgreSQL driver, or psycopg 2
        return
    original = DatabaseWrapper._set_autocommit
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def _set_autocommit(self: Any, autocommit: bool) -> None:
        state = self.__dict__
        if not autocommit and _RIDING in state:
            del state[_RIDING]  # only the transaction opened right inside riding()
            raw = self.connection
            if (
                not self.execute_wrappers
                and raw.autocommit
                and raw.info.transaction_status == TransactionStatus.IDLE
            ):
                wrapper = functools.partial(_first_statement, self)
                state[_ARMED] = wrapper
                self.execute_wrappers.append(wrapper)
                return
        elif autocommit and self.connection.autocommit:
            _disarm(self)
            if self.connection.info.transaction_status != TransactionStatus.IDLE:
                # Django ends its transaction with commit() or rollback()
                # before this; if something raised in between, what was
                # begun is not committed, and must not stay open.
                with self.wrap_database_errors:
                    self.connection.rollback()
            return
        original(self, autocommit)

    _set_autocommit._signaltrail = True  # type: ignore[attr-defined]
    DatabaseWrapper._set_autocommit = _set_autocommit

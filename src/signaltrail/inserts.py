"""The raw INSERT of events, in the form fastest on each database.

:func:`signaltrail.writer.write` prepares the values of each event's columns
(:class:`Row`); :func:`insert` sends them as one statement. Each column holds
exactly what the ORM would send: the JSON columns the text Django's
``JSONField`` produces (``json.dumps`` with its defaults), the other columns
their field's ``get_db_prep_save``. Only the databases in
:data:`RAW_VENDORS` are written this way; elsewhere the writer uses
``bulk_create``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Iterator
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import models

if TYPE_CHECKING:
    from .integrity import Chain

# The Event columns, in the order of the INSERT and of each prepared row.
COLUMNS = (
    "at",
    "action",
    "actor",
    "actor_label",
    "content_type",
    "object_pk",
    "object_repr",
    "changes",
    "context",
    "prev_hash",
    "hash",
)
RAW_VENDORS = frozenset({"sqlite", "postgresql", "mysql"})
# PostgreSQL: rows from which COPY is used. COPY costs two round trips (the
# statement, then the data) and can't carry a COMMIT: a few rows go faster
# in one INSERT.
COPY_FROM = 100
_dumps = json.JSONEncoder().encode  # json.dumps(value) with its defaults, minus the call


class Row(NamedTuple):
    """One event to insert: its columns' values but the chain's, and what its
    canonical text is made of (:func:`signaltrail.canonical.row_text`)."""

    at: Any  # the column's value
    action: str
    actor: Any  # the column's value
    actor_label: str
    content_type: Any  # the column's value
    object_pk: str
    object_repr: str
    changes: Any
    changes_json: str | None  # json.dumps(changes), when already known
    context: Any
    head: str  # canonical text of at, action, actor_label, content_type_id
    changes_text: str
    context_text: str
    user: Any  # the actor as a user instance, or None
    content_type_id: Any


def insert(connection: Any, rows: list[Row], chain: Chain, commit: bool = False) -> None:
    """One INSERT of prepared rows, in the form fastest on each database.

    ``chain`` signs each row as it is sent (:class:`signaltrail.integrity.Chain`).

    - PostgreSQL, from :data:`COPY_FROM` rows on with psycopg 3 and nothing
      to commit with them: ``COPY ... FROM STDIN``, about twice as fast as
      the INSERT below for thousands of rows (:func:`_copy`);
    - PostgreSQL: several rows as one JSON array, expanded by
      ``jsonb_array_elements`` (``WITH ORDINALITY ... ORDER BY``: ids follow
      the chain): one parameter, where a multi-row VALUES would make psycopg
      parse and quote thousands of placeholders in Python;
    - SQLite: multi-row VALUES, as many rows per statement as its variable
      limit allows (``bulk_batch_size``, as ``bulk_create`` does);
    - MySQL/MariaDB: ``executemany``, which mysqlclient turns into multi-row
      INSERTs.

    One statement per call (SQLite: per batch of rows), one query in Django's log.

    ``commit``: the caller's transaction ends with these rows. On PostgreSQL
    with psycopg 3 and client-side binding (Django's default), the statement
    is then sent as ``INSERT ...; COMMIT``: one round trip instead of two.
    If the INSERT fails, PostgreSQL skips the COMMIT; if the COMMIT fails (a
    deferred foreign key), the error is raised here, inside ``atomic()``,
    which rolls back as usual. Committing when nothing is in progress is a
    no-op for psycopg 3, so ``atomic()`` then ends cleanly.
    """
    if len(rows) >= COPY_FROM and not commit and can_copy(connection):
        copy_rows(connection, rows, chain)
        return
    sql = statements(connection)
    with connection.cursor() as cursor:
        # "" but with psycopg 3's client-side cursors; used by the two forms
        # below that send every row in one statement.
        suffix = "; COMMIT" if commit and _carries_commit(cursor) else ""
        # One row: plain VALUES, which PostgreSQL plans and runs in about
        # half the time of the JSON form (measured: ~40 vs ~90 µs).
        if len(rows) > 1 and "json_rows" in sql and all(_json_safe(row.actor) for row in rows):
            at_json = _by_identity(lambda at: _quote(at if type(at) is str else at.isoformat()))
            context_json = _by_identity(_dumps)
            elements = []
            for r in rows:
                prev, digest = chain.link(r)
                elements.append(
                    f"[{at_json(r.at)},{_quote(r.action)},{_scalar(r.actor)},"
                    f"{_quote(r.actor_label)},{_scalar(r.content_type)},{_quote(r.object_pk)},"
                    f"{_quote(r.object_repr)},"
                    f"{_dumps(r.changes) if r.changes_json is None else r.changes_json},"
                    f"{context_json(r.context)},{_quote(prev)},{_quote(digest)}]"
                )
            array = ",".join(elements)
            cursor.execute(sql["json_rows"] + suffix, [f"[{array}]"])
            return
        values = list(column_values(rows, chain))
        if len(values) == 1:
            cursor.execute(sql["insert"] + sql["row"] + suffix, values[0])
        elif connection.vendor == "sqlite":
            size = max(1, connection.ops.bulk_batch_size(sql["fields"], values))
            for start in range(0, len(values), size):
                batch = values[start : start + size]
                cursor.execute(
                    sql["insert"] + ", ".join([sql["row"]] * len(batch)),
                    [value for row in batch for value in row],
                )
        else:
            cursor.executemany(sql["insert"] + sql["row"], values)


def column_values(
    rows: Iterable[Row], chain: Chain, at: Callable[[Any], Any] | None = None
) -> Iterator[tuple[Any, ...]]:
    """Each row's column values, in :data:`COLUMNS` order, signed by ``chain``.

    ``at``: what the ``at`` column gets for a row's value, if not that value.
    """
    context_json = _by_identity(_dumps)
    link = chain.link
    for r in rows:
        prev, digest = link(r)
        changes = _dumps(r.changes) if r.changes_json is None else r.changes_json
        if at is None:
            yield (*r[:7], changes, context_json(r.context), prev, digest)
        else:
            yield (at(r.at), *r[1:7], changes, context_json(r.context), prev, digest)


def _by_identity(encode: Callable[[Any], str]) -> Callable[[Any], str]:
    """``encode``, remembered by ``id()`` of the value for one call's rows.

    The rows of one write share their context dict and timestamp: each is
    encoded once. The rows keep the values alive, so ids are not reused.
    """
    known: dict[int, str] = {}

    def encoded(value: Any) -> str:
        found = known.get(id(value))
        if found is None:
            found = known[id(value)] = encode(value)
        return found

    return encoded


def _scalar(value: Any) -> str:
    """JSON for a column value that _json_safe accepted."""
    if value is None:
        return "null"
    return _quote(value) if type(value) is str else repr(value)


def statements(connection: Any) -> dict[str, Any]:
    """The SQL pieces of :func:`insert` for ``connection``, built once."""
    cached = connection.__dict__.get("_signaltrail_sql")
    if cached is not None:
        return cached
    from .models import Event

    meta = Event._meta
    fields = [meta.get_field(name) for name in COLUMNS]
    qn = connection.ops.quote_name
    postgresql = connection.vendor == "postgresql"
    head = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
    holders = [
        "%s::jsonb" if postgresql and isinstance(f, models.JSONField) else "%s" for f in fields
    ]
    sql: dict[str, Any] = {
        "fields": fields,
        "insert": head + "VALUES ",
        "row": f"({', '.join(holders)})",
    }
    if postgresql:
        columns = []  # of one element of the JSON array
        along = []  # of one row's parameters, selected from the updated row
        for i, f in enumerate(fields):
            if isinstance(f, models.JSONField):
                columns.append(f"e->{i}")
                along.append("%s::jsonb")
            elif f.get_internal_type() in ("CharField", "TextField"):
                # Assigned as text: a value too long for the column fails as
                # with the ORM (an explicit cast would truncate it silently).
                columns.append(f"e->>{i}")
                along.append("%s")
            else:
                db_type = (
                    f.target_field.rel_db_type(connection)
                    if f.is_relation
                    else f.db_type(connection)
                )
                columns.append(f"(e->>{i})::{db_type}")
                along.append(f"%s::{db_type}")
        # An UPDATE of one row, and its event only if it matched a row:
        # along_head + the UPDATE + along_tail (signaltrail.begin). The
        # statement's rows are the UPDATE's, so its row count is what Django
        # reads, whatever a trigger on the event table does to the INSERT.
        sql["along_head"] = 'WITH "signaltrail_row" AS ('
        sql["along_tail"] = (
            f' RETURNING 1), "signaltrail_new" AS ({head}SELECT {", ".join(along)} '
            'FROM (SELECT 1 FROM "signaltrail_row" LIMIT 1) AS "signaltrail_one") '
            'SELECT 1 FROM "signaltrail_row"'
        )
        sql["copy"] = (
            f"COPY {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
        )
        sql["json_rows"] = (
            f"{head}SELECT {', '.join(columns)} "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS rows(e, n) ORDER BY n"
        )
    connection.__dict__["_signaltrail_sql"] = sql
    return sql


def copy_rows(connection: Any, rows: Iterable[Row], chain: Chain) -> int:
    """COPY the rows into the event table, through psycopg's own cursor; their number.

    ``rows`` may be built while they are sent (:func:`signaltrail.writer.write_streamed`):
    nothing here queries. psycopg's COPY is not a statement Django's cursor
    runs: it is wrapped in Django's database errors by hand, and noted in
    ``connection.queries`` (so ``assertNumQueries`` and
    ``CaptureQueriesContext`` count it) the way Django notes a
    transaction's BEGIN. Execute wrappers don't see it. Use only where
    :func:`can_copy`.
    """
    sql = statements(connection)["copy"]
    start = time.monotonic()
    count = 0
    with (
        connection.wrap_database_errors,
        connection.connection.cursor() as cursor,
        cursor.copy(sql) as copy,
    ):
        write = copy.write_row
        # The timestamp as text, once per distinct value: psycopg's datetime
        # dumper took about as long as the other ten columns together
        # (10,000 rows: 13.6 ms to format, 4.4 ms with the text). ISO 8601
        # with its offset (or without, as the naive value would be sent) is
        # what PostgreSQL reads back as the same instant.
        for values in column_values(rows, chain, at=_by_identity(_iso)):
            write(values)
            count += 1
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{sql} -- {count} rows", "time": f"{time.monotonic() - start:.3f}"}
        )
    return count


def can_copy(connection: Any) -> bool:
    """Whether :func:`copy_rows` works on ``connection``: PostgreSQL through
    psycopg 3, whose connections have COPY."""
    return (
        connection.vendor == "postgresql"
        and _client_cursor_class() is not None
        and hasattr(connection.connection, "pgconn")
    )


def _iso(at: Any) -> str:
    return at.isoformat()


def _carries_commit(cursor: Any) -> bool:
    """Whether one ``execute()`` on ``cursor`` may hold two statements.

    Only with psycopg 3's client-side binding (Django's default): the
    parameters are merged into the query, sent with the simple protocol.
    Decided from the cursor itself, so that a server-side binding cursor
    (the ``server_side_binding`` option, or a ``cursor_factory`` of one's
    own) is never sent two. psycopg 2 is left out: it tracks the
    transaction itself and would send a second COMMIT.
    """
    client_cursor = _client_cursor_class()
    return client_cursor is not None and isinstance(getattr(cursor, "cursor", None), client_cursor)


@functools.cache
def _client_cursor_class() -> Any:
    try:
        from psycopg import ClientCursor
    except ImportError:  # psycopg 2, or no PostgreSQL driver
        return None
    return ClientCursor


def _json_safe(value: Any) -> bool:
    """Whether a column value goes into the JSON array of rows as itself."""
    return value is None or type(value) is int or type(value) is str

"""One statement per batch of ``QuerySet.update()`` on PostgreSQL.

Elsewhere a batch costs a SELECT of its rows' old values (locked), then
Django's UPDATE of those rows by pk. On PostgreSQL both go as one statement::

    WITH signaltrail_old AS (<the batch's SELECT ... FOR NO KEY UPDATE>)
    UPDATE <table> SET <Django's SET clause> FROM signaltrail_old
    WHERE <table>.<pk> = signaltrail_old.<pk>
    RETURNING signaltrail_old.<pk>, <old values>, <values written>

The rows are found, locked and read once, and the values written (an
expression's result included) come back with them: one round trip and one
scan of the table per batch instead of two. The old values are those the
UPDATE replaced: the rows are locked before it reads them.

The rows come back in no particular order; they are sorted by pk in Python,
and the next batch starts after the greatest. Not when ``pre_bulk_update``
has receivers (they get each batch's pks before its UPDATE), for a composite
primary key or one Python may sort otherwise than the database (text, whose
order is the column's collation), or when the update also writes a
parent table (multi-table inheritance): :mod:`signaltrail.bulk` then runs
the two statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, models, transaction
from django.db.models import F, sql
from django.db.models.query import QuerySet

from .registry import FieldPlan
from .signals import pre_bulk_update

_OLD = "signaltrail_old"


class OneStatement:
    """A batch's statement: what is the same for every batch is built once."""

    def __init__(
        self,
        qs: QuerySet,
        query: sql.UpdateQuery,
        plans: list[FieldPlan],
        plain: tuple[Any, ...] | None,
    ) -> None:
        self.using = qs.db
        self.plain = plain
        self.width = len(plans)
        names = [f"{_OLD}_{i}" for i in range(self.width + 1)]
        self.columns = dict(zip(names, ["pk", *(p.attname for p in plans)], strict=True))
        meta = qs.model._meta
        qn = connections[self.using].ops.quote_name
        table = qn(meta.db_table)
        pk = f"{table}.{qn(meta.pk.column)}"
        self.compiler = query.get_compiler(self.using)
        update_sql, self.update_params = self.compiler.as_sql()
        old = ", ".join(f"{_OLD}.{qn(name)}" for name in names[1:])
        new = ", ".join(f"{table}.{qn(p.field.column)}" for p in plans)
        self.tail = (
            f"{update_sql} FROM {_OLD} WHERE {pk} = {_OLD}.{qn(names[0])} "
            f"RETURNING {_OLD}.{qn(names[0])}, {old}, {new}"
        )
        cols = [f.get_col(meta.db_table) for f in (meta.pk, *(p.field for p in plans))]
        # Old and written values are of the same fields: the same converters.
        self.converters = self.compiler.get_converters([*cols, *cols[1:]])

    def run(
        self, page: QuerySet, size: int
    ) -> tuple[list[tuple[Any, ...]], dict[Any, Sequence[Any]]]:
        """Update the next ``size`` rows of ``page`` (by pk).

        Returns the rows ``(pk, *old values)`` by pk, and the values written
        by pk, in the order of the plans: the plain values given, if any
        (as the other databases record them), else those returned.
        """
        selected = page.values(**{name: F(attname) for name, attname in self.columns.items()})
        selected = selected.order_by("pk")[:size]
        try:
            select_sql, select_params = selected.query.get_compiler(self.using).as_sql()
        except EmptyResultSet:  # a filter no row can match (pk__in=[], none())
            return [], {}
        with (
            transaction.mark_for_rollback_on_error(using=self.using),
            connections[self.using].cursor() as cursor,
        ):
            cursor.execute(
                f"WITH {_OLD} AS ({select_sql}) {self.tail}",
                (*select_params, *self.update_params),
            )
            fetched: list[Any] = cursor.fetchall()
        if self.converters:
            fetched = list(self.compiler.apply_converters(fetched, self.converters))
        fetched.sort(key=lambda row: row[0])
        width = self.width
        rows = [tuple(row[: 1 + width]) for row in fetched]
        if self.plain is not None:
            return rows, dict.fromkeys((row[0] for row in rows), self.plain)
        written = {row[0]: tuple(row[1 + width :]) for row in fetched}
        return rows, written


def one_statement(
    qs: QuerySet, kwargs: dict[str, Any], plans: list[FieldPlan], plain: tuple[Any, ...] | None
) -> OneStatement | None:
    """The statement for ``qs.update(**kwargs)``'s batches, or None where it doesn't apply.

    ``plain``: the values given for ``plans``, when no expression computes one.
    """
    model = qs.model
    if (
        connections[qs.db].vendor != "postgresql"
        or isinstance(model._meta.pk, models.CompositePrimaryKey)
        or not _sorted_as_in_python(model._meta.pk)
        or pre_bulk_update.has_listeners(model)
    ):
        return None
    query = sql.UpdateQuery(model)
    query.add_update_values(kwargs)
    if query.related_updates:
        return None
    return OneStatement(qs, query, plans, plain)


def _sorted_as_in_python(pk: models.Field) -> bool:
    """Whether PostgreSQL orders values of ``pk`` as Python sorts them: integers and UUIDs."""
    target = pk.target_field if pk.is_relation else pk
    return isinstance(target, (models.IntegerField, models.UUIDField))

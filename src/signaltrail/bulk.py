"""Bulk paths: ``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``, deletion.

Django sends no model signals for these, which is why signal-based audit
packages miss them. signaltrail wraps the three ``QuerySet`` methods once; for
an untracked model the wrapper is a dict lookup and then Django's own method.
For a tracked model each call records one event per affected row at a cost
that does not grow with the number of rows: per batch of rows, one SELECT of
old values, Django's own write, one SELECT of the values written when
expressions were used, and one multi-row INSERT of events - all inside the
caller's transaction (or one of its own in autocommit). On PostgreSQL an
``update()`` batch's SELECT and UPDATE are one statement
(:mod:`signaltrail.bulk_statement`).

Batches bound memory: a million-row ``update()`` never holds more than
``BULK_BATCH_SIZE`` rows.

This module installs the wrappers (:func:`install`) and holds those of
``update()`` and of deletion; ``bulk_create()`` and ``bulk_update()`` are in
:mod:`signaltrail.bulk_writes`, what they share in :mod:`signaltrail.bulk_rows`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from django.core.exceptions import FieldError
from django.db import connections, models, transaction
from django.db.models import Value, sql
from django.db.models.deletion import Collector
from django.db.models.query import QuerySet
from django.db.models.signals import pre_delete

from . import begin, canonical
from .bulk_batches import in_one_batch
from .bulk_rows import (
    Spec,
    _diff_values,
    _options,
    _original,
    _plans_for,
    _record,
    _specs,
    _suppressed,
    _values,
    by_pks,
    locked,
)
from .bulk_statement import one_statement
from .bulk_writes import bulk_create, bulk_update
from .capture import on_pre_delete
from .conf import conf
from .registry import FieldPlan, registry
from .signals import post_bulk_update, pre_bulk_update
from .writer import Entry, batched

# --------------------------------------------------------------------------
# QuerySet.update()
# --------------------------------------------------------------------------


def update(self: QuerySet, **kwargs: Any) -> int:
    opts = _options(self)
    query = self.query
    if opts is None or not kwargs or query.is_sliced or query.combinator or query.distinct_fields:
        # Django refuses these (TypeError), or there is nothing to record.
        return _original["update"](self, **kwargs)
    plans = _plans_for(opts, kwargs)
    if not plans:
        return _original["update"](self, **kwargs)
    self._for_write = True
    using = self.db
    model = self.model
    attnames = [p.attname for p in plans]
    specs = _specs(plans)
    encode = canonical.pairs_encoder(tuple(spec[0] for spec in specs))
    expressions = any(hasattr(v, "resolve_expression") for v in kwargs.values())
    # One batch (memory then grows with the rows) where batches would
    # change what the update does (see bulk_batches).
    size = None if in_one_batch(self, kwargs, plans) else conf.BULK_BATCH_SIZE
    base = model._base_manager.using(using)
    label = f"{model._meta.object_name} object"
    # A DISTINCT or grouped query can't lock its rows: its rows are then
    # read by pk, as for a query with joins.
    single = _single_table(self) and not (query.distinct or query.group_by is not None)
    total = 0
    last = None
    # The values written: those given, unless an expression computes some;
    # then all as the database returns them.
    plain = None if expressions else tuple(_plain_value(p, kwargs) for p in plans)
    # PostgreSQL: each batch's SELECT and UPDATE as one statement, unless
    # pre_bulk_update has receivers (they get the pks before the UPDATE).
    statement = one_statement(self, kwargs, plans, plain)
    # Followed by Django's UPDATE on MySQL/MariaDB only (elsewhere ignored).
    ordering = query.order_by if connections[using].vendor == "mysql" else ()
    with transaction.atomic(using=using, savepoint=False), _suppressed():
        while True:
            if statement is not None:
                rows, written = statement.run(page_query(self, base, single, last), size)
                pks = [row[0] for row in rows]
                count = len(rows)
            else:
                rows = _page(self, base, single, attnames, last, size)
                pks = [row[0] for row in rows]
                if rows:
                    pre_bulk_update.send(sender=model, pks=pks, fields=list(kwargs), using=using)
                    count, written = _write_batch(base, pks, kwargs, plans, plain, ordering)
            if not rows:
                break
            total += count
            entries = _updated(model, label, specs, encode, rows, written)
            _record(using, model, entries, len(rows))
            post_bulk_update.send(sender=model, pks=pks, fields=list(kwargs), using=using)
            if size is None or len(rows) < size:
                break
            last = pks[-1]
    return total


def _write_batch(
    base: QuerySet,
    pks: list[Any],
    kwargs: dict[str, Any],
    plans: list[FieldPlan],
    plain: tuple[Any, ...] | None,
    ordering: Sequence[Any] = (),
) -> tuple[int, dict[Any, Sequence[Any]]]:
    """Django's UPDATE of one batch: the rows it matched, and the values
    written by pk, in the order of ``plans`` (``plain``, if not None).

    ``ordering``: the caller's ``order_by()``, which Django's UPDATE follows
    on MySQL/MariaDB (and ignores elsewhere).
    """
    model = base.model
    attnames = [p.attname for p in plans]
    if ordering:
        with contextlib.suppress(FieldError):  # an annotation's name: not on the rows by pk
            base = base.order_by(*ordering)
    if plain is None and any(p.field.primary_key for p in plans):
        # The rows move to new pks: the values an expression writes are
        # computed first, by the old ones (one batch: see bulk_batches).
        names = {f"signaltrail_new_{i}": _given(p, kwargs) for i, p in enumerate(plans)}
        computed = by_pks(base, pks).annotate(**names).values_list("pk", *names)
        written = {row[0]: row[1:] for row in computed}
        return _original["update"](by_pks(base, pks), **kwargs), written
    if plain is None:
        # The values written come back with the UPDATE where the database
        # can return them, else from one SELECT.
        returned = _update_returning(by_pks(base, pks), kwargs, plans)
        if returned is not None:
            return len(returned), {row[0]: row[1:] for row in returned}
    count = _original["update"](by_pks(base, pks), **kwargs)
    if plain is not None:
        return count, dict.fromkeys(pks, plain)
    found = _values(model, base.db, pks, attnames)
    return count, {pk: [values[a] for a in attnames] for pk, values in found.items()}


def _updated(
    model: type[models.Model],
    label: str,
    specs: list[Spec],
    encode: canonical.PairsEncoder,
    rows: list[tuple[Any, ...]],
    written: dict[Any, Sequence[Any]],
) -> Iterator[Entry]:
    """The events of one batch of an update: rows ``(pk, *old)``, the values written by pk.

    Pure computation on values already fetched (no query, none of the
    project's code): the writer builds them while it sends them.
    """
    for row in rows:
        pk = row[0]
        new = written.get(pk)
        if new is None:
            continue
        found = _diff_values(specs, encode, row[1:], new)
        if found is not None:
            changes, encoded = found
            yield Entry("update", model, pk, f"{label} ({pk})", changes, encoded=encoded)


def _single_table(qs: QuerySet) -> bool:
    """Whether ``qs``'s query reads one table only (no join), as Django decides
    for its UPDATE (``SQLUpdateCompiler.pre_sql_setup``)."""
    query = qs.query.clone()
    query.get_initial_alias()
    return query.count_active_tables() == 1


def _page(
    qs: QuerySet,
    base: QuerySet,
    single: bool,
    attnames: list[str],
    last: Any,
    size: int,
) -> list[tuple[Any, ...]]:
    """The next ``size`` rows ``qs.update()`` changes after pk ``last``:
    ``(pk, *old values)``, by pk.

    One table: ``qs``'s own WHERE, which the pk index serves batch after
    batch. With joins, a filter across a multi-valued relation repeats rows;
    Django's UPDATE changes each once (``pk IN (subquery)``), and so must the
    trail record it: the subquery then starts after ``last`` too, so that
    each batch reads only what is left (the first form took a fifth of the
    time of a ``pk IN`` over all the rows, 10,000 rows on PostgreSQL).

    The rows are locked as they are read (:func:`~signaltrail.bulk_rows.locked`):
    a transaction changing one of them meanwhile would otherwise commit
    between this SELECT and the UPDATE, and the event would record as old a
    value the UPDATE did not replace.
    """
    page = page_query(qs, base, single, last)
    return list(page.values_list("pk", *attnames).order_by("pk")[:size])


def page_query(qs: QuerySet, base: QuerySet, single: bool, last: Any) -> QuerySet:
    """The rows of :func:`_page`, locked, before their columns and limit."""
    if single:
        page = qs.order_by()
    else:
        rest = qs.filter(pk__gt=last) if last is not None else qs
        page = base.filter(pk__in=rest.order_by().values("pk"))
    if last is not None:
        page = page.filter(pk__gt=last)
    return locked(page)


def _update_returning(
    qs: QuerySet, kwargs: dict[str, Any], plans: list[FieldPlan]
) -> list[tuple[Any, ...]] | None:
    """``qs.update(**kwargs)`` returning ``(pk, *values of plans)`` per row.

    What ``QuerySet.update()`` does, with ``UPDATE ... RETURNING`` (Django's
    own, as ``save()`` uses it for expressions since 6.0). None, with nothing
    done, where that isn't possible: the database can't return rows from an
    UPDATE (MySQL, MariaDB), or a multi-table child's update also writes
    its parents' tables.
    """
    if not connections[qs.db].features.can_return_rows_from_update:
        return None
    query = qs.query.chain(sql.UpdateQuery)
    query.add_update_values(kwargs)
    if query.related_updates:
        return None
    query.clear_select_clause()
    fields = [qs.model._meta.pk, *(p.field for p in plans)]
    with transaction.mark_for_rollback_on_error(using=qs.db):
        return query.get_compiler(qs.db).execute_returning_sql(fields)


def _given(plan: FieldPlan, kwargs: dict[str, Any]) -> Any:
    """The value ``kwargs`` gives for ``plan``'s field (by name or attname)."""
    value = _plain_value(plan, kwargs)
    return value if hasattr(value, "resolve_expression") else Value(value)


def _plain_value(plan: FieldPlan, kwargs: dict[str, Any]) -> Any:
    value = kwargs[plan.name] if plan.name in kwargs else kwargs[plan.attname]
    if isinstance(value, models.Model):
        return value.pk
    return value


def install() -> None:
    """Wrap the three QuerySet methods, once."""
    if _original:
        return
    for name, wrapper in (
        ("update", update),
        ("bulk_update", bulk_update),
        ("bulk_create", bulk_create),
    ):
        original = getattr(QuerySet, name)
        _original[name] = original
        wrapper.__doc__ = original.__doc__
        wrapper.alters_data = True  # type: ignore[attr-defined]
        setattr(QuerySet, name, wrapper)
    _original["collector_delete"] = Collector.delete
    collector_delete.__doc__ = Collector.delete.__doc__
    Collector.delete = collector_delete  # type: ignore[method-assign]


# --------------------------------------------------------------------------
# Deletion (Model.delete() and QuerySet.delete() both end in Collector.delete)
# --------------------------------------------------------------------------


def collector_delete(self: Any) -> Any:
    """Record the deletion of every tracked row, cascades included, in one INSERT.

    Django already sends ``post_delete`` for each row of a model with
    receivers; the capture receiver defers its events, written together here
    inside the deletion's transaction.
    """
    if not any(registry.options_for(model) for model in self.data):
        return _original["collector_delete"](self)
    if sum(len(instances) for instances in self.data.values()) == 1:
        with _riding(self):
            return _original["collector_delete"](self)
    # Django sets the pks to None at the end of its delete, before the
    # batched events are written: if writing them fails, the rows are still
    # there, and so must be the pks.
    pks = [
        (obj, model._meta.pk.attname, getattr(obj, model._meta.pk.attname))
        for model, instances in self.data.items()
        for obj in instances
    ]
    try:
        with (
            _riding(self),
            transaction.atomic(using=self.using, savepoint=False),
            batched(),
        ):
            return _original["collector_delete"](self)
    except BaseException:
        for obj, attname, pk in pks:
            setattr(obj, attname, pk)
        raise


def _riding(collector: Collector) -> contextlib.AbstractContextManager[None]:
    """Let the deletion's BEGIN travel with its first statement (:mod:`signaltrail.begin`).

    Only when nothing but the trail receives ``pre_delete`` for the models
    deleted: Django sends it inside the transaction before its first
    statement, and a receiver of the project's may use the transaction
    there in ways that need a BEGIN sent already (the raw psycopg
    connection, a server-side cursor).
    """
    for model in collector.data:
        sync, asynchronous = pre_delete._live_receivers(model)
        if asynchronous or any(receiver is not on_pre_delete for receiver in sync):
            return contextlib.nullcontext()
    return begin.riding(connections[collector.using])

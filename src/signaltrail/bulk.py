"""Bulk paths: ``QuerySet.update()``, ``bulk_create()`` and ``bulk_update()``.

Django sends no model signals for these, which is why signal-based audit
packages miss them. signaltrail wraps the three ``QuerySet`` methods once; for
an untracked model the wrapper is a dict lookup and then Django's own method.
For a tracked model each call records one event per affected row at a cost
that does not grow with the number of rows: per batch of rows, one SELECT of
old values, Django's own write, one SELECT of the values written when
expressions were used, and one multi-row INSERT of events - all inside the
caller's transaction (or one of its own in autocommit).

Batches bound memory: a million-row ``update()`` never holds more than
``BULK_BATCH_SIZE`` rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from django.db import connections, models, transaction
from django.db.models import sql
from django.db.models.deletion import Collector
from django.db.models.query import QuerySet

from .capture import _same
from .conf import conf
from .pause import count_skipped, is_paused
from .registry import FieldPlan, TrackOptions, registry
from .serialization import _plain
from .signals import post_bulk_create, post_bulk_update, pre_bulk_update
from .snapshot import remember, snapshot
from .writer import Entry, batched, object_repr, write

_inside: ContextVar[bool] = ContextVar("signaltrail_bulk_inside", default=False)
_original: dict[str, Any] = {}


@contextlib.contextmanager
def _suppressed() -> Iterator[None]:
    """Django's bulk_update() calls update(): don't record those rows twice."""
    token = _inside.set(True)
    try:
        yield
    finally:
        _inside.reset(token)


def _options(qs: QuerySet) -> TrackOptions | None:
    if _inside.get():
        return None
    return registry.options_for(qs.model)


def fallback_repr(model: type[models.Model], pk: Any) -> str:
    """What Django's default ``__str__`` says, for rows never loaded as instances."""
    return f"{model._meta.object_name} object ({pk})"


def _plans_for(opts: TrackOptions, names: Any) -> list[FieldPlan]:
    names = set(names)
    return [p for p in opts.fields if p.name in names or p.attname in names]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Values _plain (the serializer of most fields) records as they are.
_AS_IS = frozenset({int, str, bool, type(None)})

# One recorded field, as the per-row loops use it: (name, attname, plan,
# recorded as is when unmasked and of an _AS_IS type, compared with ==
# when both values have the same type - any field but a JSONField).
Spec = tuple[str, str, FieldPlan, bool, bool]


def _specs(plans: Sequence[FieldPlan]) -> list[Spec]:
    return [
        (
            p.name,
            p.attname,
            p,
            p.serialize is _plain and not p.masked,
            not isinstance(p.field, models.JSONField),
        )
        for p in plans
    ]


def _diff(specs: list[Spec], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``{name: [old, new]}`` for the fields whose value changed.

    What ``capture._same`` decides, with its common case inlined: two values
    of the same type (outside a JSONField) are the same when ``==`` says so.
    """
    changes = {}
    try:
        for name, attname, plan, as_is, by_eq in specs:
            if attname not in new:
                continue
            previous = old.get(attname)
            value = new[attname]
            if by_eq and type(previous) is type(value):
                if previous == value:
                    continue
            else:
                same, value = _same(plan.field, previous, value)
                if same:
                    continue
            if as_is:
                changes[name] = [
                    previous if type(previous) in _AS_IS else plan.record(previous),
                    value if type(value) in _AS_IS else plan.record(value),
                ]
            else:
                changes[name] = [plan.record(previous), plan.record(value)]
    except Exception:  # an odd __eq__: _same copes with it
        return _diff_slowly(specs, old, new)
    return changes


def _diff_slowly(specs: list[Spec], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    changes = {}
    for name, attname, plan, _, _ in specs:
        if attname not in new:
            continue
        previous = old.get(attname)
        same, value = _same(plan.field, previous, new[attname])
        if not same:
            changes[name] = [plan.record(previous), plan.record(value)]
    return changes


def _values(
    model: type[models.Model], using: str, pks: Sequence[Any], attnames: list[str]
) -> dict[Any, dict[str, Any]]:
    rows = model._base_manager.using(using).filter(pk__in=pks).values_list("pk", *attnames)
    return {row[0]: dict(zip(attnames, row[1:], strict=True)) for row in rows}


def _record(using: str, model: type[models.Model], entries: list[Entry]) -> None:
    if not entries:
        return
    if is_paused():
        count_skipped(model, len(entries), using=using)
        return
    write(using, entries)


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
    expressions = any(hasattr(v, "resolve_expression") for v in kwargs.values())
    size = conf.BULK_BATCH_SIZE
    base = model._base_manager.using(using)
    label = f"{model._meta.object_name} object"
    # A filter across a multi-valued relation repeats rows; Django's UPDATE
    # changes each once (pk IN (subquery)), and so must the trail record it.
    matched = base.filter(pk__in=self.order_by().values("pk")).values_list("pk", *attnames)
    total = 0
    last = None
    with transaction.atomic(using=using, savepoint=False), _suppressed():
        while True:
            page = matched.filter(pk__gt=last) if last is not None else matched
            rows = list(page.order_by("pk")[:size])
            if not rows:
                break
            pks = [row[0] for row in rows]
            pre_bulk_update.send(sender=model, pks=pks, fields=list(kwargs), using=using)
            returned = None
            if expressions:
                # The values written come back with the UPDATE where the
                # database can return them, else from one SELECT.
                returned = _update_returning(base.filter(pk__in=pks), kwargs, plans)
            if returned is not None:
                total += len(returned)
                written = {row[0]: dict(zip(attnames, row[1:], strict=True)) for row in returned}
            else:
                total += _original["update"](base.filter(pk__in=pks), **kwargs)
                if expressions:
                    written = _values(model, using, pks, attnames)
                else:
                    fixed = {p.attname: _plain_value(p, kwargs) for p in plans}
                    written = dict.fromkeys(pks, fixed)
            entries = []
            for row in rows:
                new = written.get(row[0])
                if new is None:
                    continue
                changes = _diff(specs, dict(zip(attnames, row[1:], strict=True)), new)
                if changes:
                    entries.append(Entry("update", model, row[0], f"{label} ({row[0]})", changes))
            _record(using, model, entries)
            post_bulk_update.send(sender=model, pks=pks, fields=list(kwargs), using=using)
            if len(rows) < size:
                break
            last = pks[-1]
    return total


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


def _plain_value(plan: FieldPlan, kwargs: dict[str, Any]) -> Any:
    value = kwargs[plan.name] if plan.name in kwargs else kwargs[plan.attname]
    if isinstance(value, models.Model):
        return value.pk
    return value


# --------------------------------------------------------------------------
# bulk_update()
# --------------------------------------------------------------------------


def bulk_update(self: QuerySet, objs: Any, fields: Any, batch_size: int | None = None) -> int:
    opts = _options(self)
    if opts is None or isinstance(fields, str):
        return _original["bulk_update"](self, objs, fields, batch_size=batch_size)
    objs = tuple(objs)
    plans = _plans_for(opts, fields)
    if not objs or not plans:
        return _original["bulk_update"](self, objs, fields, batch_size=batch_size)
    self._for_write = True
    using = self.db
    model = self.model
    attnames = [p.attname for p in plans]
    specs = _specs(plans)
    limit = conf.REPR_MAX_LENGTH
    size = conf.BULK_BATCH_SIZE
    with transaction.atomic(using=using, savepoint=False):
        # Old values: what each instance was loaded with; one SELECT per
        # batch for instances that weren't loaded (or lack a field).
        olds: list[dict[str, Any]] = []
        unknown = []
        for obj in objs:
            snap = snapshot(obj) or {}
            if all(a in snap for a in attnames):
                olds.append({a: snap[a] for a in attnames})
            else:
                olds.append({})
                unknown.append(obj.pk)
        fetched: dict[Any, dict[str, Any]] = {}
        for chunk in _batches(unknown, size):
            fetched.update(_values(model, using, chunk, attnames))
        with _suppressed():
            result = _original["bulk_update"](self, objs, fields, batch_size=batch_size)
        expression_pks = [
            obj.pk
            for obj in objs
            if any(hasattr(obj.__dict__.get(a), "resolve_expression") for a in attnames)
        ]
        written: dict[Any, dict[str, Any]] = {}
        for chunk in _batches(expression_pks, size):
            written.update(_values(model, using, chunk, attnames))
        for chunk_start in range(0, len(objs), size):
            entries = []
            changed = []
            for obj, old in zip(
                objs[chunk_start : chunk_start + size],
                olds[chunk_start : chunk_start + size],
                strict=True,
            ):
                old = old or fetched.get(obj.pk, {})
                new = written.get(obj.pk) or {
                    a: obj.__dict__[a] for a in attnames if a in obj.__dict__
                }
                changes = _diff(specs, old, new)
                remember(obj, opts, new)
                if changes:
                    changed.append(obj.pk)
                    entries.append(
                        Entry("update", model, obj.pk, object_repr(obj, False, limit), changes)
                    )
            _record(using, model, entries)
        post_bulk_update.send(
            sender=model, pks=[obj.pk for obj in objs], fields=list(fields), using=using
        )
    return result


# --------------------------------------------------------------------------
# bulk_create()
# --------------------------------------------------------------------------


def bulk_create(self: QuerySet, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
    opts = _options(self)
    if opts is None:
        return _original["bulk_create"](self, objs, *args, **kwargs)
    objs = list(objs)
    if not objs:
        return _original["bulk_create"](self, objs, *args, **kwargs)
    ignore = kwargs.get("ignore_conflicts", False)
    upsert = kwargs.get("update_conflicts", False)
    unique_fields = kwargs.get("unique_fields") or ()
    update_fields = kwargs.get("update_fields") or ()
    self._for_write = True
    using = self.db
    model = self.model
    meta = model._meta
    size = conf.BULK_BATCH_SIZE
    with transaction.atomic(using=using, savepoint=False):
        existing_pks: set[Any] = set()
        preset = [obj.pk for obj in objs if obj.pk is not None]
        if ignore:
            for chunk in _batches(preset, size):
                existing_pks.update(
                    model._base_manager.using(using)
                    .filter(pk__in=chunk)
                    .values_list("pk", flat=True)
                )
        before: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]] = {}
        update_plans = _plans_for(opts, update_fields) if upsert else []
        update_specs = _specs(update_plans)
        specs = _specs(opts.fields)
        limit = conf.REPR_MAX_LENGTH
        if upsert:
            key_fields = [meta.get_field(name) for name in unique_fields] or [meta.pk]
            before = _existing_by_key(model, using, objs, key_fields, update_plans)
        result = _original["bulk_create"](self, objs, *args, **kwargs)
        inserted_preset: set[Any] = set()
        if ignore:
            for chunk in _batches([pk for pk in preset if pk not in existing_pks], size):
                inserted_preset.update(
                    model._base_manager.using(using)
                    .filter(pk__in=chunk)
                    .values_list("pk", flat=True)
                )
        entries = []
        created = []
        for obj in objs:
            loaded = obj.__dict__
            if upsert:
                key = _key(obj, key_fields)
                if key in before:
                    pk, old = before[key]
                    new = {
                        p.attname: loaded[p.attname] for p in update_plans if p.attname in loaded
                    }
                    changes = _diff(update_specs, old, new)
                    if changes:
                        entries.append(
                            Entry("update", model, pk, object_repr(obj, False, limit), changes)
                        )
                    continue
            if ignore and (obj.pk is None or obj.pk not in inserted_preset):
                # Not known to be written: with ignore_conflicts Django can't
                # tell which rows were inserted; see the README.
                continue
            values = {}
            changes = {}
            for name, attname, plan, as_is, _ in specs:
                if attname in loaded:
                    value = values[attname] = loaded[attname]
                    changes[name] = [
                        None,
                        value if as_is and type(value) in _AS_IS else plan.record(value),
                    ]
            remember(obj, opts, values)
            created.append(obj)
            entries.append(Entry("create", model, obj.pk, object_repr(obj, False, limit), changes))
        for chunk in _batches(entries, size):
            _record(using, model, list(chunk))
        post_bulk_create.send(sender=model, objs=created, using=using)
    return result


def _key(obj: models.Model, fields: list[models.Field]) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.attname) for f in fields)


def _existing_by_key(
    model: type[models.Model],
    using: str,
    objs: list[Any],
    key_fields: list[models.Field],
    plans: list[FieldPlan],
) -> dict[tuple[Any, ...], tuple[Any, dict[str, Any]]]:
    """Rows an upsert will update: (pk, old values) by their unique key."""
    attnames = [p.attname for p in plans]
    key_names = [f.attname for f in key_fields]
    found: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]] = {}
    keys = list({_key(obj, key_fields) for obj in objs})
    for chunk in _batches(keys, conf.BULK_BATCH_SIZE):
        if len(key_names) == 1:
            condition = models.Q(**{f"{key_names[0]}__in": [k[0] for k in chunk]})
        else:
            condition = models.Q()
            for key in chunk:
                condition |= models.Q(**dict(zip(key_names, key, strict=True)))
        rows = (
            model._base_manager.using(using)
            .filter(condition)
            .values_list("pk", *key_names, *attnames)
        )
        for row in rows:
            key = tuple(row[1 : 1 + len(key_names)])
            found[key] = (row[0], dict(zip(attnames, row[1 + len(key_names) :], strict=True)))
    return found


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
        with transaction.atomic(using=self.using, savepoint=False), batched():
            return _original["collector_delete"](self)
    except BaseException:
        for obj, attname, pk in pks:
            setattr(obj, attname, pk)
        raise

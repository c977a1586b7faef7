"""``bulk_create()`` and ``bulk_update()`` of tracked models: one event per row.

Django sends no model signals for either. For a tracked model each call
records one event per row written, at a cost that does not grow with the
rows: per batch, one SELECT of the old values it doesn't already know (the
values instances were loaded with need none), Django's own write, and one
multi-row INSERT of events, inside the caller's transaction (or one of its
own in autocommit). :mod:`signaltrail.bulk` installs these wrappers.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.query import QuerySet

from . import canonical
from .bulk_rows import (
    _AS_IS,
    Spec,
    _batches,
    _diff,
    _options,
    _original,
    _plans_for,
    _record,
    _specs,
    _suppressed,
    _values,
    locked,
)
from .conf import conf
from .registry import FieldPlan
from .reprs import object_repr
from .signals import post_bulk_create, post_bulk_update
from .snapshot import remember, snapshot
from .writer import Entry

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
            _record(using, model, entries, len(entries))
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
        names = tuple(spec[0] for spec in specs)
        attnames = [spec[1] for spec in specs]
        recorders = [(spec[2].record, spec[3]) for spec in specs]
        encode = canonical.pairs_encoder(names, created=True)
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
        created = []
        # Written batch by batch: a batch's entries are gone before the next is built.
        for batch in _batches(objs, size):
            entries = []
            for obj in batch:
                loaded = obj.__dict__
                if upsert:
                    key = _key(obj, key_fields)
                    if key in before:
                        pk, old = before[key]
                        new = {
                            p.attname: loaded[p.attname]
                            for p in update_plans
                            if p.attname in loaded
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
                try:
                    news = [loaded[attname] for attname in attnames]
                except KeyError:  # a field left unset: its own dict of changes
                    values, changes = _created(specs, loaded)
                    encoded = None
                else:
                    values = dict(zip(attnames, news, strict=True))
                    recorded = [
                        value if as_is and type(value) in _AS_IS else record(value)
                        for value, (record, as_is) in zip(news, recorders, strict=True)
                    ]
                    encoded = encode(recorded)
                    changes = None
                    if encoded is None:
                        changes = canonical.pairs_dict(names, recorded, created=True)
                remember(obj, opts, values, own=True)
                created.append(obj)
                entries.append(
                    Entry(
                        "create",
                        model,
                        obj.pk,
                        object_repr(obj, False, limit),
                        changes,
                        encoded=encoded,
                    )
                )
            _record(using, model, entries, len(entries))
        post_bulk_create.send(sender=model, objs=created, using=using)
    return result


def _created(specs: list[Spec], loaded: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values by attname, changes) of a created row, for the fields it has."""
    values = {}
    changes = {}
    for name, attname, plan, as_is, _ in specs:
        if attname in loaded:
            value = values[attname] = loaded[attname]
            changes[name] = [None, value if as_is and type(value) in _AS_IS else plan.record(value)]
    return values, changes


def _key(obj: models.Model, fields: list[models.Field]) -> tuple[Any, ...]:
    """``obj``'s unique key, its values as the database gives them back.

    A UUID given as text, a number as a string: compared with the rows read
    back, they must be equal to the values stored, as they are to the
    database.
    """
    return tuple(_as_stored(f, getattr(obj, f.attname)) for f in fields)


def _as_stored(field: models.Field, value: Any) -> Any:
    if value is None or hasattr(value, "resolve_expression"):
        return value
    try:
        return field.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return value  # the INSERT will say what is wrong with it


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
        rows = locked(model._base_manager.using(using).filter(condition)).values_list(
            "pk", *key_names, *attnames
        )
        for row in rows:
            key = tuple(row[1 : 1 + len(key_names)])
            found[key] = (row[0], dict(zip(attnames, row[1 + len(key_names) :], strict=True)))
    return found

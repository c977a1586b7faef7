"""Recording many-to-many add, remove and clear, in both directions."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connections, models, router
from django.db.models.constants import OnConflict
from django.db.models.signals import m2m_changed
from django.db.models.utils import resolve_callables

from . import begin
from .pause import count_skipped, is_paused
from .registry import TrackOptions, registry
from .reprs import object_repr
from .serialization import to_json
from .writer import Entry, write

_UID = "signaltrail.capture"

# through model -> [(options of the tracked model, the m2m field)]
_m2m_fields: dict[type[models.Model], list[tuple[TrackOptions, models.ManyToManyField]]] = {}

_M2M_ACTIONS = {"post_add": ("m2m_add", "add"), "post_remove": ("m2m_remove", "remove")}


def _sorted_keys(keys: Any) -> list[Any]:
    """The keys in their natural order (numbers as numbers), for stable events."""
    values = [to_json(k) for k in keys]
    try:
        return sorted(values)
    except TypeError:  # keys of mixed types
        return sorted(values, key=repr)


def _reverse_targets(field: models.ManyToManyField, using: str, keys: Any) -> list[Any]:
    """The pks of the tracked (source) objects named by ``keys``.

    ``keys`` are values of the field the through table points at, which is
    the pk unless the relation uses ``to_field``.
    """
    source = field.model
    through = field.remote_field.through
    source_fk = through._meta.get_field(field.m2m_field_name())
    target = source_fk.target_field
    if target.primary_key:
        return list(keys)
    return list(
        source._base_manager.using(using)
        .filter(**{f"{target.attname}__in": list(keys)})
        .values_list("pk", flat=True)
    )


def on_m2m_changed(
    sender: type[models.Model],
    instance: models.Model,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: Any,
    using: str,
    **kwargs: Any,
) -> None:
    for opts, field in _m2m_fields.get(sender, ()):
        if reverse:
            _on_reverse(opts, field, instance, action, pk_set, using)
            continue
        if not isinstance(instance, opts.model):
            continue
        if action == "post_clear":
            entry = Entry(
                "m2m_clear",
                type(instance),
                instance.pk,
                object_repr(instance),
                {field.name: {"clear": True}},
            )
        elif action in _M2M_ACTIONS and pk_set:
            name, key = _M2M_ACTIONS[action]
            entry = Entry(
                name,
                type(instance),
                instance.pk,
                object_repr(instance),
                {field.name: {key: _sorted_keys(pk_set)}},
            )
        else:
            continue
        if is_paused():
            count_skipped(opts.model, using=using)
            continue
        write(using, [entry], hold=True)


def _on_reverse(
    opts: TrackOptions,
    field: models.ManyToManyField,
    instance: models.Model,
    action: str,
    pk_set: Any,
    using: str,
) -> None:
    """``tag.products.add(p)``: record on each affected tracked object."""
    through = field.remote_field.through
    target_fk = through._meta.get_field(field.m2m_reverse_field_name())
    own_key = getattr(instance, target_fk.target_field.attname)
    if action == "pre_clear":
        source_fk = through._meta.get_field(field.m2m_field_name())
        instance._state.__dict__.setdefault("trail_clearing", {})[field] = list(
            through._base_manager.using(using)
            .filter(**{target_fk.attname: own_key})
            .values_list(source_fk.attname, flat=True)
        )
        return
    if action == "post_clear":
        keys = instance._state.__dict__.get("trail_clearing", {}).pop(field, [])
        name, key = "m2m_remove", "remove"
    elif action in _M2M_ACTIONS and pk_set:
        keys = pk_set
        name, key = _M2M_ACTIONS[action]
    else:
        return
    pks = _reverse_targets(field, using, keys)
    if not pks:
        return
    if is_paused():
        count_skipped(opts.model, len(pks), using=using)
        return
    changes = {field.name: {key: [to_json(own_key)]}}
    label = f"{opts.model._meta.verbose_name} object"
    write(
        using,
        [Entry(name, opts.model, pk, f"{label} ({pk})", changes) for pk in _sorted_keys(pks)],
        hold=True,
    )


def _wrap_add(manager_cls: type) -> None:
    """Let ``add()``'s BEGIN travel with its first statement (:mod:`signaltrail.begin`).

    The first statement there is the INSERT of the new rows when the trail
    alone receives ``m2m_changed`` (:func:`_wrap_add_items`), else Django's
    SELECT of the rows already related, sent before any ``m2m_changed``
    receiver runs: nothing of the project's uses the transaction before it
    but the through instances' ``pre_init``/``post_init`` receivers. Then
    ``add()`` in autocommit costs no more round trips than without the
    trail (the event goes with the COMMIT): two, where Django sends BEGIN,
    the INSERT and COMMIT apart.
    """
    original = manager_cls.add
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def add(self: Any, *objs: Any, through_defaults: Any = None) -> Any:
        db = router.db_for_write(self.through, instance=self.instance)
        with begin.riding(connections[db]):
            return original(self, *objs, through_defaults=through_defaults)

    add._signaltrail = True  # type: ignore[attr-defined]
    manager_cls.add = add


def _wrap_add_items(manager_cls: type) -> None:
    """Let ``add()`` insert the new rows and learn which they were, in one statement.

    With an ``m2m_changed`` receiver connected, Django first SELECTs the
    rows already related, to send their complement as ``pk_set``; without
    one it inserts them all with conflicts ignored. When the trail's is the
    only receiver, nobody else needs the signal: here the rows are inserted
    as Django's fast path inserts them (the same through instances, their
    ``pre_init``/``post_init`` included), ``RETURNING`` the ones that were
    new, and those are recorded as ``post_add`` would have been. One query
    less, and exact under concurrent adds (Django's ``pk_set`` names a row
    another transaction inserted meanwhile as added by both). Django's own
    code runs otherwise: a receiver of the project's, a through model of
    the project's or tracked itself, the mirror rows of a symmetrical
    relation (Django sends no signal for them), a database that can't
    return inserted rows (MySQL).
    """
    original = manager_cls._add_items
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def _add_items(
        self: Any,
        source_field_name: str,
        target_field_name: str,
        *objs: Any,
        through_defaults: Any = None,
        using: str | None = None,
        raw: bool = False,
    ) -> Any:
        db = using or router.db_for_write(self.through, instance=self.instance)
        if (
            not objs
            or raw
            or not (self.reverse or source_field_name == self.source_field_name)
            or not _fast_add(self.through, db)
        ):
            return original(
                self,
                source_field_name,
                target_field_name,
                *objs,
                through_defaults=through_defaults,
                using=using,
                raw=raw,
            )
        # Called, then unused, as Django's fast path does.
        dict(resolve_callables(through_defaults or {}))
        target_ids = self._get_target_ids(target_field_name, objs)
        rows = [
            self.through(
                **{
                    f"{source_field_name}_id": self.related_val[0],
                    f"{target_field_name}_id": target_id,
                }
            )
            for target_id in target_ids
        ]
        added = _insert_new(self.through, db, source_field_name, target_field_name, rows)
        on_m2m_changed(
            sender=self.through,
            instance=self.instance,
            action="post_add",
            reverse=self.reverse,
            model=self.model,
            pk_set=added,
            using=db,
        )

    _add_items._signaltrail = True  # type: ignore[attr-defined]
    manager_cls._add_items = _add_items


def _fast_add(through: type[models.Model], using: str) -> bool:
    """Whether ``add()`` may skip Django's SELECT (see :func:`_wrap_add_items`)."""
    features = connections[using].features
    if not (
        through._meta.auto_created
        and features.supports_ignore_conflicts
        and features.can_return_rows_from_bulk_insert
        and registry.options_for(through) is None
    ):
        return False
    sync, asynchronous = m2m_changed._live_receivers(through)
    return not asynchronous and all(receiver is on_m2m_changed for receiver in sync)


def _insert_new(
    through: type[models.Model],
    using: str,
    source_field_name: str,
    target_field_name: str,
    rows: list[models.Model],
) -> set[Any]:
    """Insert ``rows``, conflicts ignored; the target keys of those inserted."""
    meta = through._meta
    fields = [meta.get_field(source_field_name), meta.get_field(target_field_name)]
    queryset = through._default_manager.using(using)
    size = max(connections[using].ops.bulk_batch_size(fields, rows), 1)
    added: set[Any] = set()
    for start in range(0, len(rows), size):
        returned = queryset._insert(
            rows[start : start + size],
            fields=fields,
            returning_fields=fields[1:],
            using=using,
            on_conflict=OnConflict.IGNORE,
        )
        added.update(row[0] for row in returned)
    return added


def connect(options: TrackOptions) -> None:
    """Record the m2m fields ``options`` names, through their through models."""
    for field in options.m2m_fields:
        through = field.remote_field.through
        if isinstance(through, str):
            continue
        sides = [getattr(field.model, field.name)]
        accessor = field.remote_field.get_accessor_name()
        if accessor and not field.remote_field.hidden:
            sides.append(getattr(field.remote_field.model, accessor, None))
        for descriptor in sides:
            manager_cls = getattr(descriptor, "related_manager_cls", None)
            if manager_cls is not None:
                _wrap_add(manager_cls)
                _wrap_add_items(manager_cls)
        entries = _m2m_fields.setdefault(through, [])
        if not any(f is field for _, f in entries):
            entries.append((options, field))
        m2m_changed.connect(
            on_m2m_changed,
            sender=through,
            dispatch_uid=f"{_UID}:{through._meta.label}",
            weak=False,
        )

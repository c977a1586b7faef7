"""Recording changes to tracked models from Django's model signals.

How old values are known without a SELECT per save: a tracked model's
``from_db`` keeps the values the row was loaded with (a reference to the row
Django already built, plus copies of mutable JSON/array values) on the
instance's ``_state``; ``post_save`` compares them with what was written.
Only an instance that was not loaded from the database, or a field that was
deferred and changed without being loaded, costs one query, made in
``pre_save`` before the row changes.

Why ``save_base`` is wrapped: in autocommit mode Django commits a plain save
before ``post_save`` runs, so an event written there would be a second
transaction. For tracked models the save runs inside ``atomic()`` when no
transaction is open, so the change and its event commit or roll back together.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from django.apps import apps
from django.db import connections, models, router, transaction
from django.db.models.signals import (
    m2m_changed,
    post_delete,
    post_save,
    pre_delete,
    pre_save,
)

from .pause import count_skipped, is_paused
from .registry import TrackOptions, registry
from .writer import Entry, object_repr, write

MISSING: Any = object()
_UID = "signaltrail.capture"


# --------------------------------------------------------------------------
# The loaded-values snapshot
# --------------------------------------------------------------------------


def _copy_mutable(opts: TrackOptions, values: dict[str, Any]) -> dict[str, Any]:
    for attname in opts.mutable_attnames & values.keys():
        values[attname] = copy.deepcopy(values[attname])
    return values


def snapshot(instance: models.Model) -> dict[str, Any] | None:
    """The values ``instance`` had in the database, by attname, if known."""
    state = instance._state.__dict__
    snap = state.get("trail_snapshot")
    if isinstance(snap, tuple):
        names, values = snap
        snap = state["trail_snapshot"] = dict(zip(names, values, strict=False))
    return snap


def _remember(instance: models.Model, opts: TrackOptions, values: dict[str, Any]) -> None:
    snap = snapshot(instance)
    values = _copy_mutable(opts, dict(values))
    if snap is None:
        instance._state.trail_snapshot = values  # type: ignore[attr-defined]
    else:
        snap.update(values)


def _wrap_from_db(model: type[models.Model]) -> None:
    for klass in model.__mro__:
        if "from_db" in klass.__dict__:
            original = klass.__dict__["from_db"].__func__
            break
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def from_db(cls: type[models.Model], db: str, field_names: Any, values: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        instance = original(cls, db, field_names, values, **kwargs)
        opts = registry.options_for(cls)
        if opts is not None:
            if opts.mutable_attnames:
                values = [
                    copy.deepcopy(v) if name in opts.mutable_attnames else v
                    for name, v in zip(field_names, values, strict=False)
                ]
            instance._state.trail_snapshot = (field_names, values)
        return instance

    from_db._signaltrail = True  # type: ignore[attr-defined]
    model.from_db = classmethod(from_db)  # type: ignore[assignment, method-assign]


def _wrap_refresh_from_db(model: type[models.Model]) -> None:
    original = model.refresh_from_db
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def refresh_from_db(self: models.Model, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opts = registry.options_for(type(self))
        if opts is not None:
            loaded = self.__dict__
            _remember(
                self,
                opts,
                {f.attname: loaded[f.attname] for f in opts.fields if f.attname in loaded},
            )

    refresh_from_db._signaltrail = True  # type: ignore[attr-defined]
    model.refresh_from_db = refresh_from_db  # type: ignore[method-assign]


def _wrap_save_base(model: type[models.Model]) -> None:
    original = model.save_base
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def save_base(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        if registry.options_for(type(self)) is None:
            return original(self, *args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(self.__class__, instance=self)
        self._state.trail_force_insert = bool(kwargs.get("force_insert"))  # type: ignore[attr-defined]
        if connections[using].in_atomic_block:
            return original(self, *args, **kwargs)
        with transaction.atomic(using=using, savepoint=False):
            return original(self, *args, **kwargs)

    save_base._signaltrail = True  # type: ignore[attr-defined]
    model.save_base = save_base  # type: ignore[method-assign]


def _fetch_old(
    instance: models.Model, opts: TrackOptions, using: str, attnames: list[str]
) -> None:
    """One query for the stored values the snapshot lacks."""
    row = (
        opts.model._base_manager.using(using)
        .filter(pk=instance.pk)
        .values_list(*attnames)
        .first()
    )
    if row is None:
        instance._state.trail_absent = True  # type: ignore[attr-defined]
    else:
        _remember(instance, opts, dict(zip(attnames, row, strict=True)))


def _needs_fallback(instance: models.Model, force_insert: bool) -> bool:
    """Whether saving may update an existing row we have no values for."""
    if force_insert or instance.pk is None:
        return False
    pk = instance._meta.pk
    # Django inserts directly when a new instance's pk comes from a default.
    return not (instance._state.adding and (pk.has_default() or pk.has_db_default()))


def on_pre_save(sender: type[models.Model], instance: models.Model, raw: bool, using: str,
                update_fields: Any = None, **kwargs: Any) -> None:
    opts = registry.options_for(sender)
    state = instance._state.__dict__
    force_insert = state.pop("trail_force_insert", False)
    state.pop("trail_absent", None)
    if opts is None or not _needs_fallback(instance, force_insert):
        return
    snap = snapshot(instance) or {}
    loaded = instance.__dict__
    missing = [
        f.attname
        for f in opts.fields
        if f.attname not in snap
        and f.attname in loaded
        and (update_fields is None or f.name in update_fields or f.attname in update_fields)
    ]
    if missing:
        _fetch_old(instance, opts, using, missing)


# --------------------------------------------------------------------------
# Saves
# --------------------------------------------------------------------------


def _same(field: models.Field, old: Any, new: Any) -> tuple[bool, Any]:
    """Compare a stored value with a new one; return (same, normalized new)."""
    try:
        if type(old) is type(new) and old == new:
            return True, new
        if new is not None and old is not None and type(old) is not type(new):
            target = field.target_field if isinstance(field, models.ForeignKey) else field
            new = target.to_python(new)
            return bool(old == new), new
        return False, new
    except Exception:
        return False, new


def _written_values(
    instance: models.Model, opts: TrackOptions, using: str, plans: Any
) -> dict[str, Any]:
    """The values the save wrote, by attname (deferred fields left out).

    A field holding an expression (``F("stock") - 1``) at save time is read
    back from the database, in one query, without touching ``instance``.
    """
    loaded = instance.__dict__
    values: dict[str, Any] = {}
    expressions = []
    for plan in plans:
        if plan.attname not in loaded:
            continue
        value = loaded[plan.attname]
        if hasattr(value, "resolve_expression"):
            expressions.append(plan.attname)
        else:
            values[plan.attname] = value
    if expressions:
        row = (
            opts.model._base_manager.using(using)
            .filter(pk=instance.pk)
            .values_list(*expressions)
            .first()
        )
        if row is not None:
            values.update(zip(expressions, row, strict=True))
    return values


def on_post_save(sender: type[models.Model], instance: models.Model, created: bool,
                 update_fields: Any = None, raw: bool = False, using: str = "default",
                 **kwargs: Any) -> None:
    opts = registry.options_for(sender)
    if opts is None:
        return
    plans = opts.fields
    if update_fields and not created:
        plans = tuple(p for p in plans if p.name in update_fields or p.attname in update_fields)
    values = _written_values(instance, opts, using, plans)
    created = created or instance._state.__dict__.pop("trail_absent", False)
    changes: dict[str, Any] = {}
    if created:
        for plan in plans:
            if plan.attname in values:
                changes[plan.name] = [None, plan.record(values[plan.attname])]
    else:
        old = snapshot(instance) or {}
        for plan in plans:
            if plan.attname not in values:
                continue
            previous = old.get(plan.attname, MISSING)
            if previous is MISSING:
                previous = None
            same, new = _same(plan.field, previous, values[plan.attname])
            if same:
                continue
            values[plan.attname] = new
            changes[plan.name] = [plan.record(previous), plan.record(new)]
    _remember(instance, opts, values)
    if not changes and not created:
        return
    if is_paused():
        count_skipped(sender, using=using)
        return
    action = "create" if created else "update"
    write(
        using,
        [Entry(action, sender, instance.pk, object_repr(instance), changes)],
    )


# --------------------------------------------------------------------------
# Deletes
# --------------------------------------------------------------------------


def on_pre_delete(sender: type[models.Model], instance: models.Model, using: str,
                  **kwargs: Any) -> None:
    opts = registry.options_for(sender)
    if opts is None or instance.pk is None:
        return
    snap = snapshot(instance) or {}
    missing = [f.attname for f in opts.fields if f.attname not in snap]
    if missing:
        _fetch_old(instance, opts, using, missing)


def on_post_delete(sender: type[models.Model], instance: models.Model, using: str,
                   **kwargs: Any) -> None:
    opts = registry.options_for(sender)
    if opts is None:
        return
    if is_paused():
        count_skipped(sender, using=using)
        return
    old = snapshot(instance) or {}
    loaded = instance.__dict__
    changes = {}
    for plan in opts.fields:
        value = old.get(plan.attname, loaded.get(plan.attname))
        changes[plan.name] = [plan.record(value), None]
    write(using, [Entry("delete", sender, instance.pk, object_repr(instance), changes)])


# --------------------------------------------------------------------------
# Many-to-many
# --------------------------------------------------------------------------

# through model -> [(options of the tracked model, the m2m field)]
_m2m_fields: dict[type[models.Model], list[tuple[TrackOptions, models.ManyToManyField]]] = {}

_M2M_ACTIONS = {"post_add": ("m2m_add", "add"), "post_remove": ("m2m_remove", "remove")}


def _sorted_keys(keys: Any) -> list[Any]:
    from .serialization import to_json

    return sorted((to_json(k) for k in keys), key=repr)


def _reverse_targets(
    field: models.ManyToManyField, using: str, keys: Any
) -> list[Any]:
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


def on_m2m_changed(sender: type[models.Model], instance: models.Model, action: str,
                   reverse: bool, model: type[models.Model], pk_set: Any, using: str,
                   **kwargs: Any) -> None:
    for opts, field in _m2m_fields.get(sender, ()):
        if reverse:
            _on_reverse(opts, field, instance, action, pk_set, using)
            continue
        if not isinstance(instance, opts.model):
            continue
        if action == "post_clear":
            entry = Entry("m2m_clear", type(instance), instance.pk, object_repr(instance),
                          {field.name: {"clear": True}})
        elif action in _M2M_ACTIONS and pk_set:
            name, key = _M2M_ACTIONS[action]
            entry = Entry(name, type(instance), instance.pk, object_repr(instance),
                          {field.name: {key: _sorted_keys(pk_set)}})
        else:
            continue
        if is_paused():
            count_skipped(opts.model, using=using)
            continue
        write(using, [entry])


def _on_reverse(opts: TrackOptions, field: models.ManyToManyField, instance: models.Model,
                action: str, pk_set: Any, using: str) -> None:
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
    from .serialization import to_json

    changes = {field.name: {key: [to_json(own_key)]}}
    label = f"{opts.model._meta.verbose_name} object"
    write(
        using,
        [Entry(name, opts.model, pk, f"{label} ({pk})", changes) for pk in sorted(pks, key=repr)],
    )


# --------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------


def _connect(model: type[models.Model]) -> None:
    uid = f"{_UID}:{model._meta.label}"
    pre_save.connect(on_pre_save, sender=model, dispatch_uid=uid, weak=False)
    post_save.connect(on_post_save, sender=model, dispatch_uid=uid, weak=False)
    pre_delete.connect(on_pre_delete, sender=model, dispatch_uid=uid, weak=False)
    post_delete.connect(on_post_delete, sender=model, dispatch_uid=uid, weak=False)


def install(options: TrackOptions) -> None:
    """Start recording changes to ``options.model``."""
    from .models import Event

    model = options.model
    if model is Event:
        return  # refused by the system check signaltrail.E005
    _wrap_from_db(model)
    _wrap_refresh_from_db(model)
    _wrap_save_base(model)
    _connect(model)
    if apps.models_ready:
        install_relations(options)


def install_relations(options: TrackOptions) -> None:
    """Connect what needs the app registry: proxies and m2m through models."""
    model = options.model
    for other in apps.get_models():
        if other._meta.proxy and other._meta.concrete_model is model:
            _connect(other)
    for field in options.m2m_fields:
        through = field.remote_field.through
        if isinstance(through, str):
            continue
        entries = _m2m_fields.setdefault(through, [])
        if not any(f is field for _, f in entries):
            entries.append((options, field))
        m2m_changed.connect(
            on_m2m_changed, sender=through, dispatch_uid=f"{_UID}:{through._meta.label}",
            weak=False,
        )

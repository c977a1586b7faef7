"""Recording saves and deletions of tracked models.

Saves: a tracked model's ``_save_table`` (the step of ``save_base`` that
writes its row) is wrapped, so the event is written right after the row,
inside ``atomic()``. In autocommit mode Django commits a plain save before
``post_save`` runs; here the row and its event commit (or roll back)
together, and ``post_save`` is then sent exactly as without the trail - after
the commit, to every receiver, whatever the order they were connected in.

Deletions: ``pre_delete`` notes the old values (and ``object_repr`` while the
rows a ``__str__`` follows still exist), ``post_delete`` writes the event.
Django's deletion collector sends both inside its own transaction.
"""

from __future__ import annotations

import functools
from typing import Any

from django.apps import apps
from django.db import connections, models, router, transaction
from django.db.models.query import QuerySet
from django.db.models.signals import post_delete, pre_delete

from . import begin, canonical, integrity, m2m
from .compare import same_value
from .pause import count_skipped, is_paused
from .registry import TrackOptions, registry
from .reprs import object_repr
from .snapshot import (
    fetch_old,
    needs_fallback,
    own_snapshot,
    remember,
    snapshot,
    wrap_from_db,
    wrap_refresh_from_db,
)
from .writer import Entry, in_batch, signed_values, write

_UID = "signaltrail.capture"

# --------------------------------------------------------------------------
# Saves
# --------------------------------------------------------------------------


def _prepare(
    instance: models.Model, opts: TrackOptions, using: str, force_insert: Any, update_fields: Any
) -> list[str]:
    """Before the row is written: fetch old values the snapshot lacks.

    Returns the fields the database computes during this save (a field
    holding an expression, a GeneratedField): Django 6 assigns them from
    RETURNING or, on backends without it (MariaDB, MySQL), deletes them from
    the instance, so they may have to be read back.
    """
    loaded = instance.__dict__
    computed = [
        p.attname
        for p in opts.fields
        if p.attname in loaded
        and (p.field.generated or hasattr(loaded[p.attname], "resolve_expression"))
    ]
    snap = own_snapshot(instance) or {}
    if is_paused() or not needs_fallback(instance, bool(force_insert)):
        return computed
    missing = [
        f.attname
        for f in opts.fields
        if f.attname not in snap
        and f.attname in loaded
        and (update_fields is None or f.name in update_fields or f.attname in update_fields)
    ]
    if missing:
        fetch_old(instance, opts, using, missing)
    return computed


def _wrap_save_table(model: type[models.Model]) -> None:
    original = model._save_table
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def _save_table(
        self: models.Model,
        raw: bool = False,
        cls: Any = None,
        force_insert: Any = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Any = None,
    ) -> Any:
        opts = registry.options_for(type(self))
        # Multi-table inheritance: the parents' rows are written first, by
        # calls with cls=parent; the event is written with the last row.
        if opts is None or (cls is not None and cls is not type(self)._meta.concrete_model):
            return original(self, raw, cls, force_insert, force_update, using, update_fields)
        using = using or router.db_for_write(type(self), instance=self)
        for left in ("trail_sent", "trail_pending"):  # by a save that failed
            self._state.__dict__.pop(left, None)
        computed = _prepare(self, opts, using, force_insert, update_fields)
        connection = connections[using]
        # Held until the commit (signaltrail.held) when other events may
        # join it, or, on PostgreSQL, to send the COMMIT with it; a save's
        # own transaction elsewhere gains nothing from waiting.
        hold = connection.in_atomic_block or connection.vendor == "postgresql"
        # In autocommit, the transaction below is the save's own: on
        # PostgreSQL its BEGIN may travel with the row's statement.
        with begin.riding(connection), transaction.atomic(using=using, savepoint=False):
            updated = original(self, raw, cls, force_insert, force_update, using, update_fields)
            # _wrap_do_update may have sent the event with the UPDATE, or
            # prepared it.
            state = self._state.__dict__
            values = state.pop("trail_sent", None)
            pending = state.pop("trail_pending", None)
            if values is None and pending is not None and updated:
                entry, values = pending
                write(using, [entry], hold=hold)
            elif values is None:
                paused = is_paused()  # then the event is only counted
                entry, values = _save_event(
                    type(self), opts, self, not updated, update_fields, using, computed, not paused
                )
                if entry is not None and paused:
                    count_skipped(type(self), using=using)
                elif entry is not None:
                    write(using, [entry], hold=hold)
        # Only now: had writing or committing failed, so would the save, and
        # the database would still hold the old values.
        remember(self, opts, values)
        return updated

    _save_table._signaltrail = True  # type: ignore[attr-defined]
    model._save_table = _save_table  # type: ignore[method-assign]


def _wrap_do_update(model: type[models.Model]) -> None:
    """Let an autocommit update send its event with the row (PostgreSQL).

    ``_do_update`` runs once the fields' ``pre_save`` has given the values
    to write: the event is known then, before the UPDATE is sent. When the
    UPDATE is the first statement of the save's own transaction
    (:mod:`signaltrail.begin`), the UPDATE and its event go as one
    statement that commits on its own: one round trip for the whole save,
    nested in no other save (``atomic_blocks``). Not
    when the database computes a value (an expression, a GeneratedField:
    Django reads it back), with ``select_on_save``, while paused, when the
    event can't be signed without a query first, or when the model
    overrides ``_save_table`` or ``_do_update`` or its base manager's
    queryset overrides ``_update`` (code after its ``super()`` call would
    run after the commit).
    """
    original = model._do_update
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def _do_update(
        self: models.Model,
        base_qs: Any,
        using: str,
        pk_val: Any,
        values: Any,
        update_fields: Any,
        forced_update: Any,
        returning_fields: Any,
    ) -> Any:
        args = (base_qs, using, pk_val, values, update_fields, forced_update, returning_fields)
        connection = connections[using]
        opts = registry.options_for(type(self))
        if (
            opts is None
            or not begin.armed(connection)
            or len(connection.atomic_blocks) != 1  # a save inside another's pre_save
            or not _djangos_own(type(self))
            or type(base_qs)._update is not QuerySet._update
            or not values
            or returning_fields
            or (self._meta.select_on_save and not forced_update)
            or is_paused()
        ):
            return original(self, *args)
        entry, written = _save_event(type(self), opts, self, False, update_fields, using, ())
        if entry is None:
            return original(self, *args)
        signed = signed_values(using, entry)
        # A query made meanwhile (a __str__ following a relation, the first
        # content type lookup) took the BEGIN: the event goes the usual way.
        if signed is None or not begin.armed(connection):
            result = original(self, *args)
        else:
            with begin.along(connection, base_qs.model._meta.db_table, signed[0]) as offer:
                result = original(self, *args)
            if offer.sent:
                integrity.set_chain_head(connection, signed[1])
                self._state.trail_sent = written  # type: ignore[attr-defined]
                return result
        if result:  # the row was updated: this is its event, to write as usual
            self._state.trail_pending = (entry, written)  # type: ignore[attr-defined]
        return result

    _do_update._signaltrail = True  # type: ignore[attr-defined]
    model._do_update = _do_update  # type: ignore[method-assign]


def _djangos_own(model: type[models.Model]) -> bool:
    """Whether ``model`` saves through Django's own ``_save_table`` and ``_do_update``."""
    return (
        getattr(model._save_table, "__wrapped__", None) is models.Model._save_table
        and getattr(model._do_update, "__wrapped__", None) is models.Model._do_update
    )


def _written_values(
    instance: models.Model, opts: TrackOptions, using: str, plans: Any, had_expression: Any
) -> dict[str, Any]:
    """The values the save wrote, by attname (deferred fields left out).

    A field the database computed (an expression such as ``F("stock") - 1``,
    a GeneratedField) whose result Django did not assign to the instance is
    read back from the database, in one query, without touching ``instance``.
    """
    loaded = instance.__dict__
    values: dict[str, Any] = {}
    expressions = []
    for plan in plans:
        if plan.attname not in loaded:
            if plan.attname in had_expression:
                expressions.append(plan.attname)
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


def _save_event(
    sender: type[models.Model],
    opts: TrackOptions,
    instance: models.Model,
    created: bool,
    update_fields: Any,
    using: str,
    computed: Any,
    with_repr: bool = True,
) -> tuple[Entry | None, dict[str, Any]]:
    """The event of a save (None if nothing changed), and the values it wrote.

    ``with_repr=False``: the event's ``object_repr`` is left empty (a paused
    trail only counts the event).
    """
    plans = opts.fields
    if update_fields and not created:
        plans = tuple(p for p in plans if p.name in update_fields or p.attname in update_fields)
    values = _written_values(instance, opts, using, plans, computed)
    names: list[str] = []  # of the recorded fields
    recorded: list[Any] = []  # their values as recorded: new ones, or old, new, ...
    if created:
        for plan in plans:
            if plan.attname in values:
                _, new = same_value(plan.field, None, values[plan.attname])
                values[plan.attname] = new
                names.append(plan.name)
                recorded.append(plan.record(new))
    else:
        old = snapshot(instance) or {}
        for plan in plans:
            if plan.attname not in values:
                continue
            previous = old.get(plan.attname)
            same, new = same_value(plan.field, previous, values[plan.attname])
            if same:
                continue
            values[plan.attname] = new
            names.append(plan.name)
            recorded.append(plan.record(previous))
            recorded.append(plan.record(new))
    if not (names or created):
        return None, values
    # The changes' texts from a template per set of fields, as for deletions;
    # a dict only for values the template doesn't write (JSON).
    encoded = canonical.pairs_encoder(tuple(names), created=created)(recorded)
    changes = None
    if encoded is None:
        changes = canonical.pairs_dict(names, recorded, created=created)
    action = "create" if created else "update"
    text = object_repr(instance) if with_repr else ""
    return Entry(action, sender, instance.pk, text, changes, encoded=encoded), values


# --------------------------------------------------------------------------
# Deletes
# --------------------------------------------------------------------------


def _mark_parents(instance: models.Model) -> None:
    """Flag the parent rows Django deletes along with a tracked child.

    A multi-table child is created and updated as one object (Django saves
    its parent rows without signals), so its deletion is one event too, not
    the child's plus a parent-only one that no create precedes. The
    collector reaches the parents through the child's parent links, which
    caches them on the child, and sends every pre_delete before any
    post_delete.
    """
    pending = [instance]
    while pending:
        child = pending.pop()
        for link in child._meta.parents.values():
            if link is not None and link.is_cached(child):
                parent = link.get_cached_value(child)
                if parent is not None:
                    parent._state.trail_deleted_with_child = True
                    pending.append(parent)


def on_pre_delete(
    sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any
) -> None:
    opts = registry.options_for(sender)
    state = instance._state.__dict__
    if opts is None or instance.pk is None or state.get("trail_deleted_with_child"):
        return
    _mark_parents(instance)
    if is_paused():
        return
    snap = own_snapshot(instance) or {}
    missing = [f.attname for f in opts.fields if f.attname not in snap]
    if missing:
        fetch_old(instance, opts, using, missing)
    # Now, while the rows a __str__ may follow still exist: a cascade
    # deletes them before any post_delete is sent. In a batched (multi-row)
    # deletion a __str__ needing a query gets the default text instead, so
    # that the number of queries stays constant.
    state["trail_repr"] = object_repr(instance, fetch=not in_batch())


def on_post_delete(
    sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any
) -> None:
    opts = registry.options_for(sender)
    if opts is None:
        return
    state = instance._state.__dict__
    if state.pop("trail_deleted_with_child", False):
        return
    if is_paused():
        count_skipped(sender, using=using)
        return
    old = snapshot(instance) or {}
    loaded = instance.__dict__
    recorded = [
        plan.record(old.get(plan.attname, loaded.get(plan.attname))) for plan in opts.fields
    ]
    # The changes' texts from one template per model (canonical.pairs_encoder),
    # or, for values it doesn't write (JSON), from the dict.
    encoded = canonical.pairs_encoder(opts.names, deleted=True)(recorded)
    changes = None
    if encoded is None:
        changes = canonical.pairs_dict(opts.names, recorded, deleted=True)
    text = state.pop("trail_repr", None)
    if text is None:
        text = object_repr(instance)
    entry = Entry("delete", sender, instance.pk, text, changes, encoded=encoded)
    write(using, [entry], defer=True, hold=True)


# --------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------


def _connect(model: type[models.Model]) -> None:
    uid = f"{_UID}:{model._meta.label}"
    pre_delete.connect(on_pre_delete, sender=model, dispatch_uid=uid, weak=False)
    post_delete.connect(on_post_delete, sender=model, dispatch_uid=uid, weak=False)


def install(options: TrackOptions) -> None:
    """Start recording changes to ``options.model``."""
    from .models import Event

    model = options.model
    if model is Event:
        return  # refused by the system check signaltrail.E005
    wrap_from_db(model)
    wrap_refresh_from_db(model)
    _wrap_save_table(model)
    _wrap_do_update(model)
    _connect(model)
    if apps.models_ready:
        install_relations(options)


def install_relations(options: TrackOptions) -> None:
    """Connect what needs the app registry: proxies and m2m through models."""
    model = options.model
    for other in apps.get_models():
        if other._meta.proxy and other._meta.concrete_model is model:
            _connect(other)
    m2m.connect(options)

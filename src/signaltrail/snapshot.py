"""What a tracked instance held in the database: the loaded-values snapshot.

Old values come from the row Django loaded, not from a SELECT per save: a
tracked model's ``from_db`` keeps a reference to the values Django already
has (plus copies of mutable JSON/array values, so in-place changes show) on
the instance's ``_state``. Only an instance that was not loaded from the
database, or a field deferred and changed without being loaded, costs one
query (:func:`fetch_old`).
"""

from __future__ import annotations

import copy
import functools
import threading
from contextvars import ContextVar
from typing import Any

from django.db import models

from .registry import TrackOptions, registry

# While a tracked instance is being refreshed, the instances ``from_db``
# builds (the first is the freshly loaded row) are collected here.
_refreshing: ContextVar[list[models.Model] | None] = ContextVar(
    "signaltrail_refreshing", default=None
)
# How many refreshes are in progress, in every thread and task. ``from_db``
# runs for every row a query loads; while this is 0 (almost always) it skips
# the ContextVar lookup. Changed under the lock; read without it.
_refreshes = 0
_refreshes_lock = threading.Lock()


# --------------------------------------------------------------------------
# The loaded-values snapshot
# --------------------------------------------------------------------------


def _copy_mutable(opts: TrackOptions, values: dict[str, Any]) -> dict[str, Any]:
    for attname in opts.mutable_attnames & values.keys():
        values[attname] = copy.deepcopy(values[attname])
    return values


class _Loaded:
    """A loaded row's values with their attnames, kept as ``from_db`` got them."""

    __slots__ = ("names", "values")

    def __init__(self, names: Any, values: Any) -> None:
        self.names = names
        self.values = values


@functools.cache
def _row_attnames(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(f.attname for f in model._meta.concrete_fields)


def snapshot(instance: models.Model) -> dict[str, Any] | None:
    """The values ``instance`` had in the database, by attname, if known.

    ``from_db`` keeps the row lazily (see :func:`wrap_from_db`): a dict is
    only built here, the first time a save or delete asks.
    """
    state = instance._state.__dict__
    snap = state.get("trail_snapshot")
    if snap is None or type(snap) is dict:
        return snap
    if type(snap) is _Loaded:
        names, values = snap.names, snap.values
    else:  # every concrete field's value, in model order
        names, values = _row_attnames(type(instance)), snap
    snap = state["trail_snapshot"] = dict(zip(names, values, strict=False))
    return snap


def remember(
    instance: models.Model, opts: TrackOptions, values: dict[str, Any], *, own: bool = False
) -> None:
    """Note ``values`` (by attname) as what ``instance`` now has in the database.

    ``own``: ``values`` is a dict nobody else holds, kept as it is (the bulk
    paths build one per row for this alone).
    """
    # A new dict, never an update in place: a dict handed out by snapshot()
    # stays what it was.
    state = instance._state.__dict__
    snap = state.get("trail_snapshot")
    if snap is not None:
        snap = snapshot(instance)
    if not own:
        values = dict(values)
    if opts.mutable_attnames:
        _copy_mutable(opts, values)
    state["trail_snapshot"] = values if snap is None else {**snap, **values}


def own_snapshot(instance: models.Model) -> dict[str, Any] | None:
    """The snapshot, unless it describes another row than ``instance.pk``.

    Setting the pk of a loaded instance to another row's and saving updates
    (or inserts) that row: the values loaded from the first say nothing of it.
    """
    snap = snapshot(instance)
    if snap is not None:
        pk_attname = instance._meta.pk.attname
        if snap.get(pk_attname, instance.pk) != instance.pk:
            instance._state.trail_snapshot = None  # type: ignore[attr-defined]
            return None
    return snap


def wrap_from_db(model: type[models.Model]) -> None:
    """Keep the loaded values of every tracked instance Django builds from a row.

    This runs once per row of every query on the model, so it does the
    least it can: one dict lookup for the options and one attribute set of a
    reference to the row Django already has. A full row is kept as the very
    ``values`` Django passed (its attnames are the model's concrete fields,
    in order); only a partial row (``only()``/``defer()``) or one with
    mutable values to copy gets a small wrapper. Allocating nothing per row
    matters: a container per loaded row costs more in garbage collection
    than the wrapper's own work. No ContextVar is read unless a refresh is
    in progress.
    """
    for klass in model.__mro__:
        if "from_db" in klass.__dict__:
            original = klass.__dict__["from_db"].__func__
            break
    if getattr(original, "_signaltrail", False):
        return
    tracked = registry._options.get

    def keep(
        cls: type[models.Model], instance: models.Model, field_names: Any, values: Any
    ) -> None:
        opts = tracked(cls)
        if opts is None:
            opts = registry.options_for(cls)  # a proxy; or an untracked subclass
            if opts is None:
                return
        mutable = opts.mutable_attnames
        if mutable:
            values = [
                copy.deepcopy(v) if name in mutable else v
                for name, v in zip(field_names, values, strict=False)
            ]
        instance._state.trail_snapshot = _Loaded(field_names, values)  # type: ignore[attr-defined]
        if _refreshes:
            loaded = _refreshing.get()
            if loaded is not None:
                loaded.append(instance)

    if original is models.Model.from_db.__func__:
        # Django's own: for a full row of a tracked model, its body, with the
        # row kept; anything else, through it. Calling Django's for every row
        # as well costs a Python frame per row, about 1.5% of a read.
        # tests/test_old_values.py checks both give the same instance.
        @functools.wraps(original)
        def from_db(  # type: ignore[no-untyped-def]
            cls: type[models.Model], db: str, field_names: Any, values: Any, *, fetch_mode=None
        ):
            opts = tracked(cls)
            if opts is None or len(values) != opts.plain_row_length or _refreshes:
                instance = original(cls, db, field_names, values, fetch_mode=fetch_mode)
                keep(cls, instance, field_names, values)
                return instance
            new = cls(*values)
            state = new._state
            state.adding = False
            state.db = db
            if fetch_mode is not None:
                state.fetch_mode = fetch_mode
            state.trail_snapshot = values  # type: ignore[attr-defined]
            return new

    else:

        @functools.wraps(original)
        def from_db(cls: type[models.Model], db: str, field_names: Any, values: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
            instance = original(cls, db, field_names, values, **kwargs)
            keep(cls, instance, field_names, values)
            return instance

    from_db._signaltrail = True  # type: ignore[attr-defined]
    model.from_db = classmethod(from_db)  # type: ignore[assignment, method-assign]


def wrap_refresh_from_db(model: type[models.Model]) -> None:
    original = model.refresh_from_db
    if getattr(original, "_signaltrail", False):
        return

    @functools.wraps(original)
    def refresh_from_db(self: models.Model, *args: Any, **kwargs: Any) -> None:
        # Django copies onto ``self`` exactly the fields of the row it loads
        # (``fields``, or the non-deferred ones, or what ``from_queryset``
        # selects). That row's own snapshot is the new baseline for those
        # fields only: the others keep their pending in-memory changes.
        global _refreshes
        opts = registry.options_for(type(self))
        if opts is None:
            return original(self, *args, **kwargs)
        with _refreshes_lock:
            _refreshes += 1
        token = _refreshing.set([])
        try:
            original(self, *args, **kwargs)
            loaded = _refreshing.get()
        finally:
            _refreshing.reset(token)
            with _refreshes_lock:
                _refreshes -= 1
        row = next((i for i in loaded or () if isinstance(i, type(self))), None)
        if row is not None:
            remember(self, opts, snapshot(row) or {})

    refresh_from_db._signaltrail = True  # type: ignore[attr-defined]
    model.refresh_from_db = refresh_from_db  # type: ignore[method-assign]


def fetch_old(instance: models.Model, opts: TrackOptions, using: str, attnames: list[str]) -> None:
    """One query for the stored values the snapshot lacks."""
    row = (
        opts.model._base_manager.using(using).filter(pk=instance.pk).values_list(*attnames).first()
    )
    if row is not None:
        remember(instance, opts, dict(zip(attnames, row, strict=True)))


def needs_fallback(instance: models.Model, force_insert: bool) -> bool:
    """Whether saving may update an existing row we have no values for."""
    if force_insert or instance.pk is None:
        return False
    pk = instance._meta.pk
    # Django inserts directly when a new instance's pk comes from a default.
    return not (instance._state.adding and (pk.has_default() or pk.has_db_default()))

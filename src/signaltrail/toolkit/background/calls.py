"""What a background call carries, and how it is turned back into receiver arguments.

A call crosses a process boundary (the outbox row, then the task backend's
message), so everything in it is JSON. Objects travel by reference and are
loaded fresh by the worker:

- a model instance becomes ``{"__instance__": [label, pk, db]}`` and comes back
  as the row as it is *then* in the database, or ``None`` if it is gone;
- a model class becomes ``{"__model__": label}``;
- another importable class or function becomes ``{"__object__": "module.qualname"}``;
- sets become sorted lists, tuples lists; JSON scalars, lists and dicts with
  string keys stay as they are.

Any other value (a request, a queryset) cannot cross and is left out of the
call's keyword arguments. ``changes`` holds the field values as of the signal,
recorded like the trail records them (Decimal and UUID as strings, datetimes in
ISO 8601, masked fields as ``"***"``, excluded fields left out).
"""

from __future__ import annotations

import functools
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.utils.module_loading import import_string

from ...registry import FieldPlan, TrackOptions, registry
from ...snapshot import snapshot

DROP: Any = object()  # a value that cannot cross a process boundary
CALL_VERSION = 1

_SAVE_SIGNALS = (pre_save, post_save)
_DELETE_SIGNALS = (pre_delete, post_delete)


# --------------------------------------------------------------------------
# Values by reference
# --------------------------------------------------------------------------


def encode(value: Any, depth: int = 0) -> Any:
    """JSON for ``value``, or :data:`DROP` if it cannot be sent to a worker."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else DROP
    if depth > 20:
        return DROP
    if isinstance(value, models.Model):
        if value.pk is None:
            return DROP
        return {"__instance__": [value._meta.label, _pk_json(value.pk), value._state.db]}
    if isinstance(value, type) and issubclass(value, models.Model):
        return {"__model__": value._meta.label}
    if isinstance(value, set | frozenset):
        items = [encode(v, depth + 1) for v in value]
        if any(i is DROP for i in items):
            return DROP
        return sorted(items, key=lambda i: (type(i).__name__, repr(i)))
    if isinstance(value, list | tuple):
        items = [encode(v, depth + 1) for v in value]
        return DROP if any(i is DROP for i in items) else items
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return DROP
        items = {k: encode(v, depth + 1) for k, v in value.items()}
        return DROP if any(i is DROP for i in items.values()) else items
    path = _import_path(value)
    return {"__object__": path} if path else DROP


def decode(value: Any, default_db: str | None = None) -> Any:
    """The value :func:`encode` stood for; instances are loaded from the database now."""
    if isinstance(value, list):
        return [decode(v, default_db) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, ref),) = value.items()
        if tag == "__instance__":
            label, pk, db = ref
            return load_instance(label, pk, db or default_db)
        if tag == "__model__":
            return apps.get_model(ref)
        if tag == "__object__":
            return import_string(ref)
    return {k: decode(v, default_db) for k, v in value.items()}


def load_instance(label: str, pk: Any, db: str | None) -> models.Model | None:
    """The row as it is now in ``db``; ``None`` if it was deleted."""
    model = apps.get_model(label)
    manager = model._base_manager.db_manager(db) if db else model._base_manager
    return manager.filter(pk=pk).first()


def _pk_json(pk: Any) -> Any:
    return pk if type(pk) in (int, str) else str(pk)


def _import_path(value: Any) -> str | None:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not (isinstance(value, type) or callable(value)) or not module or not qualname:
        return None
    if "<" in qualname:  # <locals>, <lambda>
        return None
    path = f"{module}.{qualname}"
    try:
        return path if import_string(path) is value else None
    except ImportError:
        return None


# --------------------------------------------------------------------------
# Changed field values
# --------------------------------------------------------------------------


@functools.cache
def _untracked_plans(model: type[models.Model]) -> tuple[FieldPlan, ...]:
    # The same field list and masking a tracked model would get.
    return TrackOptions(model=model).fields


def _plans(model: type[models.Model]) -> tuple[FieldPlan, ...]:
    opts = registry.options_for(model)
    return opts.fields if opts is not None else _untracked_plans(model)


def _python(field: models.Field, value: Any) -> Any:
    """``value`` as the field's Python type (``0`` for a DecimalField -> ``Decimal("0")``)."""
    if value is None or isinstance(field, models.JSONField):
        return value
    try:
        target = field.target_field if isinstance(field, models.ForeignKey) else field
        return target.to_python(value)
    except Exception:
        return value


def _same(field: models.Field, old: Any, new: Any) -> bool:
    try:
        return bool(old == new) if type(old) is type(new) else bool(old == _python(field, new))
    except Exception:
        return False


def changes(signal: Any, instance: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The field values a receiver of ``signal`` is told about, as of now.

    - pre_save/post_save: the fields this save writes that differ from the
      values loaded from the database. The loaded values are known for models
      signaltrail tracks; for other models, and for new rows, every field the
      save writes (``update_fields`` only, when given).
    - pre_delete/post_delete: every field, as it was when deleted.
    - any other signal: nothing (``{}``).
    """
    if not isinstance(instance, models.Model):
        return {}
    loaded = instance.__dict__
    plans = _plans(type(instance))
    if signal in _DELETE_SIGNALS:
        return {
            p.name: p.record(_python(p.field, loaded[p.attname]))
            for p in plans
            if p.attname in loaded
        }
    if signal not in _SAVE_SIGNALS:
        return {}
    created = kwargs.get("created", instance._state.adding)
    update_fields = kwargs.get("update_fields")
    before = None
    if not created:
        # Stashed by the save_base wrapper (outbox.py) before the save: by
        # post_save the trail's snapshot already holds the new values.
        before = instance._state.__dict__.get("trail_bg_before", snapshot(instance))
        pk_attname = instance._meta.pk.attname
        if before is not None and before.get(pk_attname, instance.pk) != instance.pk:
            before = None
    found = {}
    for plan in plans:
        if plan.attname not in loaded:
            continue
        if (
            update_fields
            and not created
            and plan.name not in update_fields
            and plan.attname not in update_fields
        ):
            continue
        value = loaded[plan.attname]
        if hasattr(value, "resolve_expression"):
            continue  # computed by the database: the worker's fresh instance has it
        if (
            before is not None
            and plan.attname in before
            and _same(plan.field, before[plan.attname], value)
        ):
            continue
        found[plan.name] = plan.record(_python(plan.field, value))
    return found


# --------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------


def payload(signal: Any, sender: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON stored with a pending call: sender, changes and the other kwargs."""
    instance = kwargs.get("instance")
    extra = {}
    for name, value in kwargs.items():
        if name in ("instance", "signal", "sender"):
            continue
        encoded = encode(value)
        if encoded is not DROP:
            extra[name] = encoded
    sent_by = encode(sender)
    return {
        "sender": None if sent_by is DROP else sent_by,
        "changes": changes(signal, instance, kwargs),
        "kwargs": extra,
    }


def call_for(row: Any, db: str) -> dict[str, Any]:
    """The message sent to the task backend for a PendingCall row on alias ``db``."""
    return {
        "v": CALL_VERSION,
        "key": str(row.key),
        "db": db,
        "receiver": row.receiver,
        "signal": row.signal,
        "instance": [row.model, row.object_pk] if row.model else None,
        **row.payload,
    }


def receiver_kwargs(call: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments the receiver is called with, loaded now."""
    db = call["db"]
    kwargs = {name: decode(value, db) for name, value in (call.get("kwargs") or {}).items()}
    instance = None
    if call.get("instance"):
        label, pk = call["instance"]
        instance = load_instance(label, pk, db)
    signal = None
    if call.get("signal") and not call["signal"].startswith("<"):
        try:
            signal = import_string(call["signal"])
        except ImportError:
            signal = None
    return {
        **kwargs,
        "signal": signal,
        "sender": decode(call.get("sender"), db),
        "instance": instance,
        "changes": call.get("changes") or {},
        "idempotency_key": call["key"],
    }

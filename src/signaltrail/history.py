"""Reading the trail back: ``history``, ``as_of``, ``revert`` and ``record``."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.db import models, router, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .conf import MASK
from .context import context
from .exceptions import RevertError
from .registry import TrackOptions, registry
from .reprs import object_repr
from .serialization import from_json, to_json
from .writer import Entry, write_one

_ROW_ACTIONS = ("create", "update", "delete")


def _event_model() -> Any:
    from .models import Event

    return Event


def _alias(obj: models.Model | None) -> str:
    if obj is not None and obj._state.db:
        return obj._state.db
    return router.db_for_write(_event_model()) or "default"


def history(obj: models.Model) -> Any:
    """The events of ``obj``, newest first (a ``QuerySet[Event]``)."""
    return _event_model().objects.using(_alias(obj)).for_object(obj).newest_first()


def record(action: str, obj: models.Model | None = None, **details: Any) -> Any:
    """Record a custom event, optionally about ``obj``.

    ``details`` go into the event's ``context``, over the current context.
    """
    if not isinstance(action, str) or not action.strip() or len(action) > 64:
        raise ValueError(_("An action must be a non-empty text of at most 64 characters."))
    if obj is not None and not isinstance(obj, models.Model):
        raise TypeError(_("record() takes a model instance as obj, got %r.") % (obj,))
    entry = Entry(
        action,
        type(obj) if obj is not None else None,
        obj.pk if obj is not None else None,
        object_repr(obj) if obj is not None else "",
        {},
        details,
    )
    return write_one(_alias(obj), entry)


def _current_values(model: type[models.Model], using: str, pk: Any) -> dict[str, Any] | None:
    fields = model._meta.concrete_fields
    row = (
        model._base_manager.using(using)
        .filter(pk=pk)
        .values_list(*[f.attname for f in fields])
        .first()
    )
    if row is None:
        return None
    return {f.name: to_json(v) for f, v in zip(fields, row, strict=True)}


def as_of(obj: models.Model, when: datetime.datetime) -> dict[str, Any] | None:
    """The field values ``obj`` had at ``when``, by field name.

    Rebuilt from the object's current row (or its deletion event) by undoing
    every change recorded after ``when``. Returns None when the object did
    not exist then. Only the fields the trail records are returned: an
    excluded field's past values are unknown, and a masked field always reads
    ``"***"`` (None when empty), as in the trail - as_of must not show what
    the trail was told to hide. A naive ``when`` is taken in the current time
    zone, as Django does for naive datetimes.
    """
    if settings.USE_TZ and timezone.is_naive(when):
        when = timezone.make_aware(when)
    model = type(obj)._meta.concrete_model
    opts = registry.options_for(model) or TrackOptions(model=model)
    plans = {plan.name: plan for plan in opts.fields}
    events = list(
        history(obj).filter(action__in=_ROW_ACTIONS).values_list("at", "action", "changes")
    )
    state = _current_values(model, _alias(obj), obj.pk)
    if state is None:
        deletion = next((e for e in events if e[1] == "delete"), None)
        if deletion is None:
            return None
        state = {name: pair[0] for name, pair in deletion[2].items()}
    for at, action, changes in events:  # newest first
        if at <= when:
            if action == "delete":
                return None
            break
        if action == "create":
            return None
        for name, pair in changes.items():
            state[name] = pair[0]
    result = {}
    for field in model._meta.concrete_fields:
        plan = plans.get(field.name)
        if plan is None or field.name not in state:
            continue
        value = state[field.name]
        if plan.masked:
            result[field.name] = None if value is None else MASK
        else:
            result[field.name] = value if value == MASK else from_json(field, value)
    return result


_REVERTIBLE = ("create", "update", "delete", "m2m_add", "m2m_remove")


def revert(event: Any) -> Any:
    """Put the object back as it was before ``event``.

    Reverting an update restores the fields it changed (masked fields, whose
    values the trail never kept, are left as they are); reverting a create
    deletes the object; reverting a delete recreates it with the same pk;
    m2m add/remove are undone. The revert is itself recorded, with
    ``context["reverted_event"]``. Raises :class:`RevertError`, changing
    nothing, when the event cannot be reverted.
    """
    event_model = _event_model()
    if not isinstance(event, event_model):
        raise TypeError(_("revert() takes an Event, got %r.") % (event,))
    if event.action == "m2m_clear":
        raise RevertError(
            _(
                "Events of type m2m_clear cannot be reverted: the trail does not "
                "record which relations a clear removed."
            )
        )
    if event.action not in _REVERTIBLE:
        raise RevertError(
            _("Events of type %(action)s cannot be reverted.") % {"action": event.action}
        )
    ct = event.content_type
    model = ct.model_class() if ct is not None else None
    if model is None:
        raise RevertError(_("Event %(id)s is not about a model that exists.") % {"id": event.pk})
    using = event._state.db or "default"
    pk = model._meta.pk.to_python(event.object_pk)
    manager = model._base_manager.using(using)
    with transaction.atomic(using=using), context(reverted_event=event.pk):
        if event.action == "update":
            obj = _get(manager, pk, event)
            names = []
            for name, (old, _new) in event.changes.items():
                field = _field(model, name)
                if field is None or old == MASK:
                    continue
                setattr(obj, field.attname, from_json(field, old))
                names.append(field.attname)
            if names:
                obj.save(update_fields=names)
            return obj
        if event.action == "create":
            obj = _get(manager, pk, event)
            obj.delete()
            return None
        if event.action == "delete":
            if manager.filter(pk=pk).exists():
                raise RevertError(_("The deleted object exists again; nothing was changed."))
            values = {}
            for name, (old, _new) in event.changes.items():
                field = _field(model, name)
                if field is not None and old != MASK:
                    values[field.attname] = from_json(field, old)
            obj = model(**values)
            obj.save(force_insert=True, using=using)
            return obj
        if event.action in ("m2m_add", "m2m_remove"):
            obj = _get(manager, pk, event)
            for name, change in event.changes.items():
                manager_ = getattr(obj, name)
                if event.action == "m2m_add":
                    manager_.remove(*change.get("add", []))
                else:
                    manager_.add(*change.get("remove", []))
            return obj
    raise RevertError(_("Events of type %(action)s cannot be reverted.") % {"action": event.action})


def _get(manager: Any, pk: Any, event: Any) -> models.Model:
    try:
        return manager.get(pk=pk)
    except manager.model.DoesNotExist:
        raise RevertError(
            _("The object of event %(id)s no longer exists; nothing was changed.")
            % {"id": event.pk}
        ) from None


def _field(model: type[models.Model], name: str) -> models.Field | None:
    try:
        field = model._meta.get_field(name)
    except Exception:
        return None
    return field if getattr(field, "concrete", False) else None


__all__ = ["as_of", "history", "object_repr", "record", "revert"]

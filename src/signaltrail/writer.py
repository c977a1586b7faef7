"""Writing events: the one place rows enter the ``Event`` table.

Events are inserted with ``bulk_create``, which sends no model signals, so a
receiver connected without a sender never sees an Event, and into the same
database alias as the change they describe, inside its transaction.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models.base import ModelState
from django.db.models.fetch_modes import FETCH_RAISE
from django.utils import timezone
from django.utils.encoding import force_str

from . import integrity
from .conf import conf
from .context import current, resolve_actor
from .serialization import safe_repr, to_json


@dataclass
class Entry:
    """One event to write, before the context and integrity fields are added."""

    action: str
    model: type[models.Model] | None = None
    object_pk: Any = None
    object_repr: str = ""
    changes: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    actor: Any = None  # overrides the context's actor when set


def object_repr(instance: models.Model, fetch: bool = True) -> str:
    """``str(instance)`` without side effects on ``instance`` and never raising.

    ``__str__`` runs on a shallow copy (Django copies the related-object
    cache), so a ``__str__`` that follows a foreign key doesn't fill the
    caller's instance; a lazy translation or a non-string result is coped with.
    With ``fetch=False`` (the bulk paths, whose query count must not grow with
    the rows) a ``__str__`` that would need a query gives Django's default
    ``"Model object (pk)"`` instead.
    """
    try:
        try:
            target = copy.copy(instance)
        except Exception:
            target = instance
        else:
            if not fetch:
                target._state.fetch_mode = FETCH_RAISE
        text = force_str(target.__str__())
    except Exception:
        text = f"{instance._meta.object_name} object ({safe_repr(instance.pk)})"
    return text[: conf.REPR_MAX_LENGTH]


_deferred: ContextVar[dict[str, list[Entry]] | None] = ContextVar(
    "signaltrail_deferred", default=None
)


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Insert the events deferred inside the block together, at its end.

    Used around Django's deletion collector: a ``QuerySet.delete()`` of many
    rows (and its cascades) then costs one SELECT and one multi-row INSERT
    instead of two queries per row. Nothing is written if the block raises.
    """
    if _deferred.get() is not None:
        yield  # the outermost block writes
        return
    pending: dict[str, list[Entry]] = {}
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
    for using, entries in pending.items():
        write(using, entries)


def in_batch() -> bool:
    return _deferred.get() is not None


def write(using: str, entries: Sequence[Entry], defer: bool = False) -> list[Any]:
    """Insert ``entries`` as events on ``using`` and send ``event_recorded``.

    Costs one SELECT (the newest hash) and one multi-row INSERT, whatever the
    number of entries. With ``defer=True`` inside :func:`batched`, the entries
    are kept and written when the block ends.
    """
    pending = _deferred.get() if defer else None
    if pending is not None:
        pending.setdefault(using, []).extend(entries)
        return []
    from django.contrib.contenttypes.models import ContentType

    from .models import Event
    from .signals import event_recorded

    if not entries:
        return []
    ctx = current()
    base_actor, base_label = resolve_actor(ctx.actor)
    metadata = to_json(ctx.metadata)
    now = timezone.now()
    prev = integrity.latest_hash(using)
    cts = ContentType.objects.db_manager(using)
    events = []
    for entry in entries:
        actor, label = (base_actor, base_label)
        if entry.actor is not None:
            actor, label = resolve_actor(entry.actor)
        ct = None
        if entry.model is not None:
            ct = cts.get_for_model(entry.model)
        context = {**metadata, **to_json(entry.details)} if entry.details else metadata
        object_pk = "" if entry.object_pk is None else str(to_json(entry.object_pk))
        changes = entry.changes
        text = integrity.canonical(
            at=now,
            action=entry.action,
            actor_label=label,
            content_type_id=ct.pk if ct is not None else None,
            object_pk=object_pk,
            object_repr=entry.object_repr,
            changes=changes,
            context=context,
            prev_hash=prev,
        )
        digest = integrity.compute_hash(text)
        events.append(
            _new_event(
                Event,
                at=now,
                action=entry.action,
                actor=actor,
                actor_label=label,
                content_type=ct,
                object_pk=object_pk,
                object_repr=entry.object_repr,
                changes=changes,
                context=context,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    Event.objects.db_manager(using).bulk_create(events)
    if event_recorded.has_listeners(Event):
        for event in events:
            event_recorded.send(sender=Event, event=event)
    return events


def _new_event(event_model: type[models.Model], **values: Any) -> Any:
    """An unsaved Event, built without ``Model.__init__``.

    ``__init__`` sends ``pre_init`` and ``post_init``: a receiver connected to
    those without a sender would see every row the trail writes. The instance
    is set up as ``__init__`` would: every field at its default, then
    ``values`` through the model's descriptors (which cache ``actor`` and
    ``content_type`` as ``__init__`` does).
    """
    event = event_model.__new__(event_model)
    event._state = ModelState()
    for f in event_model._meta.concrete_fields:
        event.__dict__[f.attname] = f.get_default()
    for name, value in values.items():
        setattr(event, name, value)
    return event


def write_one(using: str, entry: Entry) -> Any:
    return write(using, [entry])[0]

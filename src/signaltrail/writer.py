"""Writing events: the one place rows enter the ``Event`` table.

Events are inserted with ``bulk_create``, which sends no model signals, so a
receiver connected without a sender never sees an Event, and into the same
database alias as the change they describe, inside its transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models
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


def object_repr(instance: models.Model) -> str:
    """``str(instance)`` without side effects on ``instance`` and never raising.

    ``__str__`` runs on a shallow copy (Django copies the related-object
    cache), so a ``__str__`` that follows a foreign key doesn't fill the
    caller's instance; a lazy translation or a non-string result is coped with.
    """
    try:
        try:
            target = copy.copy(instance)
        except Exception:
            target = instance
        text = force_str(target.__str__())
    except Exception:
        text = f"{instance._meta.object_name} object ({safe_repr(instance.pk)})"
    return text[: conf.REPR_MAX_LENGTH]


def write(using: str, entries: Sequence[Entry]) -> list[Any]:
    """Insert ``entries`` as events on ``using`` and send ``event_recorded``.

    Costs one SELECT (the newest hash) and one multi-row INSERT, whatever the
    number of entries.
    """
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
        model_label = ""
        if entry.model is not None:
            ct = cts.get_for_model(entry.model)
            model_label = f"{ct.app_label}.{ct.model}"
        context = {**metadata, **to_json(entry.details)} if entry.details else metadata
        object_pk = "" if entry.object_pk is None else str(to_json(entry.object_pk))
        changes = entry.changes
        text = integrity.canonical(
            at=now,
            action=entry.action,
            actor_label=label,
            model_label=model_label,
            object_pk=object_pk,
            object_repr=entry.object_repr,
            changes=changes,
            context=context,
            prev_hash=prev,
        )
        digest = integrity.compute_hash(text)
        events.append(
            Event(
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


def write_one(using: str, entry: Entry) -> Any:
    return write(using, [entry])[0]

"""Writing events: the one place rows enter the ``Event`` table.

Events go into the same database alias as the change they describe, inside
its transaction, and never through ``Model.save()``: no model signal is sent
for them, so a receiver connected without a sender never sees an Event. Nor
does it see a ContentType: the content type ids come from
:mod:`signaltrail.content_types`, which builds no instance.

The usual path is one raw INSERT of values prepared here, whatever the
number of events (:func:`signaltrail.inserts.insert`). When Event instances
are needed anyway - ``event_recorded`` has receivers, ``record()`` returns
one - or on another database than SQLite, PostgreSQL and MySQL/MariaDB, the
same values are inserted with ``bulk_create``, which also sets the
instances' pks.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models
from django.db.models.base import ModelState
from django.utils import timezone

from . import canonical, held, inserts, integrity
from .content_types import content_type_id
from .context import current, resolve_actor
from .inserts import RAW_VENDORS, Row, can_copy, column_values, copy_rows, insert
from .serialization import to_json


@dataclass(slots=True)
class Entry:
    """One event to write, before the context and integrity fields are added."""

    action: str
    model: type[models.Model] | None = None
    object_pk: Any = None
    object_repr: str = ""
    changes: dict[str, Any] | None = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    actor: Any = None  # overrides the context's actor when set
    # (canonical text, JSON) of ``changes``, when the caller encoded them
    # (:func:`signaltrail.canonical.pairs_encoder`); ``changes`` may then be
    # None, and is read back from the JSON if an Event instance needs it.
    encoded: tuple[str, str] | None = None


# --------------------------------------------------------------------------
# Batching (deletions)
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def write(
    using: str,
    entries: Sequence[Entry],
    defer: bool = False,
    *,
    returning: bool = False,
    hold: bool = False,
) -> list[Any]:
    """Insert ``entries`` as events on ``using`` and send ``event_recorded``.

    Costs one multi-row INSERT (on SQLite, one per ~3,000 events: its
    variable limit), plus one SELECT of the newest hash unless this
    connection already knows it (and, the first time on ``using`` or after
    content types changed, one SELECT of their ids:
    :mod:`signaltrail.content_types`). Returns the Event instances (with
    their pks) when ``returning`` is set or ``event_recorded`` has
    receivers, else ``[]``.

    With ``defer=True`` inside :func:`batched`, the entries are kept and
    written when the block ends. With ``hold=True`` inside ``atomic()``,
    they may wait in :mod:`signaltrail.held` and be inserted with the
    transaction's other events, before it commits.
    """
    pending = _deferred.get() if defer else None
    if pending is not None:
        pending.setdefault(using, []).extend(entries)
        return []
    if not entries:
        return []
    event_model, event_recorded = _models()
    connection = connections[using]
    # Most projects connect nothing: skip asking for the live receivers then.
    listeners = bool(event_recorded.receivers) and event_recorded.has_listeners(event_model)
    instances = returning or listeners or connection.vendor not in RAW_VENDORS
    rows = _rows(connection, using, entries, instances)
    if hold and not instances and held.can_hold(connection):
        held.hold(connection, rows)
        return []
    held.flush(connection)  # what waits was recorded first
    events = insert_rows(connection, rows, instances=instances)
    if listeners:
        for event in events:
            event_recorded.send(sender=event_model, event=event)
    return events


def write_streamed(
    using: str, model: type[models.Model], entries: Iterable[Entry], most: int
) -> None:
    """:func:`write` of ``entries``, at most ``most`` events of ``model``, built while sent.

    For the bulk paths' entries, which the trail computes from values already
    fetched: building them runs no query and none of the project's code. From
    :data:`~signaltrail.inserts.COPY_FROM` events on PostgreSQL with psycopg 3,
    when no receiver wants Event instances, each entry is built as COPY
    sends it, so the server stores the first events while the next are
    diffed, encoded and signed (a 10,000-row ``QuerySet.update()``: the ~25 ms
    of diffing then overlaps the server's work). Anywhere else:
    ``write(using, list(entries))``.
    """
    connection = connections[using]
    event_model, event_recorded = _models()
    listeners = bool(event_recorded.receivers) and event_recorded.has_listeners(event_model)
    if listeners or most < inserts.COPY_FROM or not can_copy(connection):
        write(using, list(entries))
        return
    entries = iter(entries)
    first = next(entries, None)
    if first is None:
        return
    held.flush(connection)  # what waits was recorded first
    # Whatever may query comes before the COPY: the actor (resolved here),
    # the model's content type, the chain's head.
    make = _row_maker(connection, using, False)
    content_type_id(using, model)
    chain = integrity.Chain(integrity.chain_head(connection))
    copy_rows(connection, map(make, itertools.chain((first,), entries)), chain)
    integrity.set_chain_head(connection, chain.head)


def _rows(connection: Any, using: str, entries: Sequence[Entry], instances: bool) -> list[Row]:
    """The entries' columns, and the parts of their canonical text but the chain."""
    make = _row_maker(connection, using, instances)
    return [make(entry) for entry in entries]


def _row_maker(connection: Any, using: str, instances: bool) -> Callable[[Entry], Row]:
    """A function building one entry's :class:`Row`, for the events of one write.

    What the rows share (the context, the time, the actor) is read here,
    once; the function itself queries only for a content type (or actor)
    not seen before on ``using``.
    """
    actor_field, ct_field = _fields()
    ctx = current()
    if ctx.metadata:
        metadata = to_json(ctx.metadata)
        metadata_text = canonical.encode(metadata)
    else:
        metadata, metadata_text = {}, "{}"
    now = timezone.now()
    at_text = canonical.timestamp_text(now)
    # What the field's get_db_prep_save() gives an aware datetime, minus its
    # checks of values that timezone.now() never returns.
    at_db = now if instances else connection.ops.adapt_datetimefield_value(now)
    base_actor = _who(ctx.actor, actor_field, connection, instances)
    actors: dict[int, tuple[Any, str, Any]] = {}  # per entry actor, by id()
    content_types: dict[type[models.Model], tuple[Any, Any]] = {}  # ct id, column value
    heads: dict[tuple[str, str, Any], str] = {}  # canonical heads by (action, label, ct id)
    encode, encode_changes = canonical.encode, canonical.encode_changes
    row_head = canonical.row_head

    def make(entry: Entry) -> Row:
        if entry.actor is None:
            actor, label, actor_db = base_actor
        else:
            known = actors.get(id(entry.actor))
            if known is None:
                known = actors[id(entry.actor)] = _who(
                    entry.actor, actor_field, connection, instances
                )
            actor, label, actor_db = known
        ct_id = ct_db = None
        if entry.model is not None:
            known_ct = content_types.get(entry.model)
            if known_ct is None:
                found = content_type_id(using, entry.model)
                known_ct = content_types[entry.model] = (
                    found,
                    None if instances else _ct_column(ct_field, found, connection),
                )
            ct_id, ct_db = known_ct
        if entry.details:
            context = {**metadata, **to_json(entry.details)}
            context_text = encode(context)
        else:
            context, context_text = metadata, metadata_text
        pk = entry.object_pk
        if pk is None:
            object_pk = ""
        elif type(pk) is int or type(pk) is str:
            object_pk = str(pk)
        else:
            object_pk = str(to_json(pk))
        text = entry.object_repr
        if type(text) is not str:
            text = str(text)  # as the ORM would store it (TextField.to_python)
        key = (entry.action, label, ct_id)
        head = heads.get(key)
        if head is None:
            head = heads[key] = row_head(at_text, *key)
        changes = entry.changes
        if entry.encoded is None:
            changes_text, changes_json = encode_changes(changes)
        else:
            changes_text, changes_json = entry.encoded
            if changes is None and instances:
                changes = json.loads(changes_json)
        return Row(
            at_db,
            entry.action,
            actor_db,
            label,
            ct_db,
            object_pk,
            text,
            changes,
            changes_json,
            context,
            head,
            changes_text,
            context_text,
            actor,
            ct_id,
        )

    return make


def insert_rows(
    connection: Any, rows: list[Row], *, instances: bool = False, commit: bool = False
) -> list[Any]:
    """Chain and sign prepared rows, then insert them; the Events when ``instances``.

    ``commit``: the transaction commits right after (see
    :func:`signaltrail.inserts.insert`).
    """
    prev = integrity.chain_head(connection)
    events: list[Any] = []
    if instances:
        links = _sign(rows, prev)
        if links:
            prev = links[-1][1]
        event_model, _ = _models()
        events = [
            _new_event(
                event_model,
                at=row.at,
                action=row.action,
                actor=row.user,
                actor_label=row.actor_label,
                content_type_id=row.content_type_id,
                object_pk=row.object_pk,
                object_repr=row.object_repr,
                changes=row.changes,
                context=row.context,
                prev_hash=link[0],
                hash=link[1],
            )
            for row, link in zip(rows, links, strict=True)
        ]
        event_model.objects.db_manager(connection.alias).bulk_create(events)
    else:
        chain = integrity.Chain(prev)
        insert(connection, rows, chain, commit=commit)
        prev = chain.head
    integrity.set_chain_head(connection, prev)
    return events


def _sign(rows: list[Row], prev: str) -> list[tuple[str, str]]:
    """Each row's ``(prev_hash, hash)``, chained from ``prev``."""
    chain = integrity.Chain(prev)
    return [chain.link(row) for row in rows]


def signed_values(using: str, entry: Entry) -> tuple[tuple[Any, ...], str] | None:
    """The column values of ``entry``'s event, chained and signed, and its hash.

    For a statement of the caller's that inserts the event itself (an
    autocommit update on PostgreSQL sends it with the row's UPDATE:
    :mod:`signaltrail.begin`); the caller notes the hash as the chain's head
    once the row is written (:func:`signaltrail.integrity.set_chain_head`).
    None where :func:`write` is needed: ``event_recorded`` has receivers (they
    get Event instances), or the chain's head is not known without a query.
    """
    event_model, event_recorded = _models()
    if event_recorded.receivers and event_recorded.has_listeners(event_model):
        return None
    connection = connections[using]
    prev = integrity.known_head(connection)
    if prev is None:
        return None
    rows = _rows(connection, using, [entry], False)
    chain = integrity.Chain(prev)
    (values,) = column_values(rows, chain)
    return values, chain.head


def _ct_column(ct_field: Any, ct_id: Any, connection: Any) -> Any:
    """The content type column's value for ``ct_id`` (the same every time)."""
    cache = connection.__dict__.setdefault("_signaltrail_ct_column", {})
    value = cache.get(ct_id)
    if value is None:
        value = cache[ct_id] = ct_field.get_db_prep_save(ct_id, connection)
    return value


def _who(actor: Any, actor_field: Any, connection: Any, instances: bool) -> tuple[Any, str, Any]:
    """(user instance or None, label, the actor column's value) for a context actor."""
    user, label = resolve_actor(actor)
    if instances or user is None:
        return user, label, None
    value = getattr(user, actor_field.target_field.attname)
    return user, label, actor_field.get_db_prep_save(value, connection)


@functools.cache
def _models() -> tuple[Any, Any]:
    """Event and event_recorded: imported once the apps are ready."""
    from .models import Event
    from .signals import event_recorded

    return Event, event_recorded


@functools.cache
def _fields() -> tuple[Any, Any]:
    from .models import Event

    meta = Event._meta
    return meta.get_field("actor"), meta.get_field("content_type")


def _new_event(event_model: type[models.Model], **values: Any) -> Any:
    """An unsaved Event, built without ``Model.__init__``.

    ``__init__`` sends ``pre_init`` and ``post_init``: a receiver connected to
    those without a sender would see every row the trail writes. The instance
    is set up as ``__init__`` would: every field at its default, then
    ``values`` through the model's descriptors (which cache ``actor`` as
    ``__init__`` does). The content type is set by id: ``event.content_type``
    loads it when read, so writing builds no ContentType instance.
    """
    event = event_model.__new__(event_model)
    event._state = ModelState()
    for f in event_model._meta.concrete_fields:
        event.__dict__[f.attname] = f.get_default()
    for name, value in values.items():
        setattr(event, name, value)
    return event


def write_one(using: str, entry: Entry) -> Any:
    return write(using, [entry], returning=True)[0]

"""Writing events: the one place rows enter the ``Event`` table.

Events go into the same database alias as the change they describe, inside
its transaction, and never through ``Model.save()``: no model signal is sent
for them, so a receiver connected without a sender never sees an Event.

The usual path is one raw INSERT of values prepared here, whatever the
number of events (see :func:`_insert` for its form on each database). Each
column holds exactly what the ORM would send: the JSON columns the text
Django's ``JSONField`` produces (``json.dumps`` with its defaults), the other
columns their field's ``get_db_prep_save``. When Event instances are needed
anyway - ``event_recorded`` has receivers, ``record()`` returns one - or on
another database than SQLite, PostgreSQL and MySQL/MariaDB, the same values
are inserted with ``bulk_create``, which also sets the instances' pks.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, NamedTuple

from django.db import connections, models
from django.db.models.base import ModelState
from django.db.models.fetch_modes import FETCH_RAISE
from django.utils import timezone
from django.utils.encoding import force_str

from . import integrity
from .conf import conf
from .context import current, resolve_actor
from .serialization import safe_repr, to_json


@dataclass(slots=True)
class Entry:
    """One event to write, before the context and integrity fields are added."""

    action: str
    model: type[models.Model] | None = None
    object_pk: Any = None
    object_repr: str = ""
    changes: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    actor: Any = None  # overrides the context's actor when set


# --------------------------------------------------------------------------
# object_repr
# --------------------------------------------------------------------------

# Per model class: whether copying it the way Django's pickling does can be
# done directly (see _copy). Classes overriding any of these copy themselves.
_COPY_HOOKS = ("__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__copy__")
_plain_copy: dict[type, bool] = {}


def _copy(instance: models.Model) -> models.Model:
    """``copy.copy(instance)``, without the pickling machinery it goes through.

    For a model that doesn't customize copying, ``copy.copy`` ends in
    ``Model.__getstate__``/``__setstate__``: a new instance whose ``__dict__``
    is a copy, with a copy of ``_state`` (minus its ``peers``) and of its
    related-object cache. This builds the same directly, several times faster.
    """
    cls = type(instance)
    plain = _plain_copy.get(cls)
    if plain is None:
        plain = _plain_copy[cls] = all(
            getattr(cls, name, None) is getattr(models.Model, name, None) for name in _COPY_HOOKS
        )
    state = instance.__dict__.get("_state")
    if not plain or type(state) is not ModelState:
        return copy.copy(instance)
    values = instance.__dict__.copy()
    state_values = state.__dict__.copy()
    state_values.pop("peers", None)
    cache = state_values.get("fields_cache")
    if cache is not None:
        state_values["fields_cache"] = cache.copy()
    new_state = ModelState.__new__(ModelState)
    new_state.__dict__.update(state_values)
    values["_state"] = new_state
    new = cls.__new__(cls)
    new.__dict__.update(values)
    return new


def object_repr(instance: models.Model, fetch: bool = True, limit: int | None = None) -> str:
    """``str(instance)`` without side effects on ``instance`` and never raising.

    ``__str__`` runs on a shallow copy (Django copies the related-object
    cache), so a ``__str__`` that follows a foreign key doesn't fill the
    caller's instance; a lazy translation or a non-string result is coped with.
    With ``fetch=False`` (the bulk paths, whose query count must not grow with
    the rows) a ``__str__`` that would need a query gives Django's default
    ``"Model object (pk)"`` instead. ``limit`` defaults to ``REPR_MAX_LENGTH``
    (the bulk paths read the setting once per call).
    """
    try:
        try:
            target = _copy(instance)
        except Exception:
            target = instance
        else:
            if not fetch:
                target._state.fetch_mode = FETCH_RAISE
        text = force_str(target.__str__())
    except Exception:
        text = f"{instance._meta.object_name} object ({safe_repr(instance.pk)})"
    return text[: conf.REPR_MAX_LENGTH if limit is None else limit]


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

# The Event columns, in the order of the INSERT and of each prepared row.
COLUMNS = (
    "at",
    "action",
    "actor",
    "actor_label",
    "content_type",
    "object_pk",
    "object_repr",
    "changes",
    "context",
    "prev_hash",
    "hash",
)
_RAW_VENDORS = frozenset({"sqlite", "postgresql", "mysql"})
_dumps = json.JSONEncoder().encode  # json.dumps(value) with its defaults, minus the call


def write(
    using: str, entries: Sequence[Entry], defer: bool = False, *, returning: bool = False
) -> list[Any]:
    """Insert ``entries`` as events on ``using`` and send ``event_recorded``.

    Costs one multi-row INSERT (on SQLite, one per ~3,000 events: its
    variable limit), plus one SELECT of the newest hash unless an event was
    already written on ``using`` in this transaction. Returns the Event
    instances (with their pks) when ``returning`` is set or
    ``event_recorded`` has receivers, else ``[]``.
    With ``defer=True`` inside :func:`batched`, the entries are kept and
    written when the block ends.
    """
    pending = _deferred.get() if defer else None
    if pending is not None:
        pending.setdefault(using, []).extend(entries)
        return []
    if not entries:
        return []
    event_model, event_recorded, content_type_model = _models()
    at_field, actor_field, ct_field = _fields()
    connection = connections[using]
    listeners = event_recorded.has_listeners(event_model)
    instances = returning or listeners or connection.vendor not in _RAW_VENDORS
    ctx = current()
    metadata = to_json(ctx.metadata)
    metadata_text = integrity.encode(metadata)
    now = timezone.now()
    at_text = integrity.timestamp_text(now)
    at_db = None if instances else at_field.get_db_prep_save(now, connection)
    sign = integrity.signer()
    cts = _content_types.get(using)
    if cts is None:
        # A copy of ContentType.objects sharing its cache (cleared in place).
        cts = _content_types[using] = content_type_model.objects.db_manager(using)
    base_actor = _who(ctx.actor, actor_field, connection, instances)
    actors: dict[int, tuple[Any, str, Any]] = {}  # per entry actor, by id()
    content_types: dict[type[models.Model], tuple[Any, Any, Any]] = {}  # ct, id, column value
    heads: dict[tuple[str, str, Any], str] = {}  # canonical heads by (action, label, ct id)
    encode, encode_changes = integrity.encode, integrity.encode_changes
    row_text, row_head = integrity.row_text, integrity.row_head
    prev = integrity.chain_head(connection)
    rows: list[Row] = []
    events: list[Any] = []
    for entry in entries:
        if entry.actor is None:
            actor, label, actor_db = base_actor
        else:
            known = actors.get(id(entry.actor))
            if known is None:
                known = actors[id(entry.actor)] = _who(
                    entry.actor, actor_field, connection, instances
                )
            actor, label, actor_db = known
        ct = ct_id = ct_db = None
        if entry.model is not None:
            known_ct = content_types.get(entry.model)
            if known_ct is None:
                found = cts.get_for_model(entry.model)
                known_ct = content_types[entry.model] = (
                    found,
                    found.pk,
                    None if instances else ct_field.get_db_prep_save(found.pk, connection),
                )
            ct, ct_id, ct_db = known_ct
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
        changes = entry.changes
        key = (entry.action, label, ct_id)
        head = heads.get(key)
        if head is None:
            head = heads[key] = row_head(at_text, *key)
        changes_text, changes_json = encode_changes(changes)
        digest = sign(row_text(head, object_pk, text, changes_text, context_text, prev))
        if instances:
            events.append(
                _new_event(
                    event_model,
                    at=now,
                    action=entry.action,
                    actor=actor,
                    actor_label=label,
                    content_type=ct,
                    object_pk=object_pk,
                    object_repr=text,
                    changes=changes,
                    context=context,
                    prev_hash=prev,
                    hash=digest,
                )
            )
        else:
            rows.append(
                Row(
                    entry.action,
                    actor_db,
                    label,
                    ct_db,
                    object_pk,
                    text,
                    changes,
                    changes_json,
                    context,
                    prev,
                    digest,
                )
            )
        prev = digest
    if instances:
        event_model.objects.db_manager(using).bulk_create(events)
    else:
        _insert(connection, at_db, rows)
    integrity.set_chain_head(connection, prev)
    if listeners:
        for event in events:
            event_recorded.send(sender=event_model, event=event)
    return events


def _who(actor: Any, actor_field: Any, connection: Any, instances: bool) -> tuple[Any, str, Any]:
    """(user instance or None, label, the actor column's value) for a context actor."""
    user, label = resolve_actor(actor)
    if instances or user is None:
        return user, label, None
    value = getattr(user, actor_field.target_field.attname)
    return user, label, actor_field.get_db_prep_save(value, connection)


@functools.cache
def _models() -> tuple[Any, Any, Any]:
    """Event, event_recorded and ContentType: imported once the apps are ready."""
    from django.contrib.contenttypes.models import ContentType

    from .models import Event
    from .signals import event_recorded

    return Event, event_recorded, ContentType


_content_types: dict[str, Any] = {}  # ContentType managers by alias


@functools.cache
def _fields() -> tuple[Any, Any, Any]:
    from .models import Event

    meta = Event._meta
    return meta.get_field("at"), meta.get_field("actor"), meta.get_field("content_type")


class Row(NamedTuple):
    """One event to insert, its values prepared ("at" apart: the same for all)."""

    action: str
    actor: Any  # the column's value
    actor_label: str
    content_type: Any  # the column's value
    object_pk: str
    object_repr: str
    changes: Any
    changes_json: str | None  # json.dumps(changes), when already known
    context: Any
    prev_hash: str
    hash: str


def _insert(connection: Any, at_db: Any, rows: list[Row]) -> None:
    """One INSERT of prepared rows, in the form fastest on each database.

    - PostgreSQL: the rows as one JSON array, expanded by
      ``jsonb_array_elements`` (``WITH ORDINALITY ... ORDER BY``: ids follow
      the chain): two parameters, where a multi-row VALUES would make psycopg
      parse and quote thousands of placeholders in Python;
    - SQLite: multi-row VALUES, as many rows per statement as its variable
      limit allows (``bulk_batch_size``, as ``bulk_create`` does);
    - MySQL/MariaDB: ``executemany``, which mysqlclient turns into multi-row
      INSERTs.

    One statement per call (SQLite: per batch of rows), one query in Django's log.
    """
    sql = _statements(connection)
    texts: dict[int, str] = {}  # by id(): the context is mostly one dict for all rows

    def context_json(value: Any) -> str:
        found = texts.get(id(value))
        if found is None:
            found = texts[id(value)] = _dumps(value)
        return found

    with connection.cursor() as cursor:
        if "json_rows" in sql and all(_json_safe(row.actor) for row in rows):
            array = ",".join(
                [
                    f"[{_quote(r.action)},{_scalar(r.actor)},{_quote(r.actor_label)},"
                    f"{_scalar(r.content_type)},{_quote(r.object_pk)},{_quote(r.object_repr)},"
                    f"{_dumps(r.changes) if r.changes_json is None else r.changes_json},"
                    f"{context_json(r.context)},{_quote(r.prev_hash)},{_quote(r.hash)}]"
                    for r in rows
                ]
            )
            cursor.execute(sql["json_rows"], [at_db, f"[{array}]"])
            return
        values = [
            (
                at_db,
                *r[:6],
                _dumps(r.changes) if r.changes_json is None else r.changes_json,
                context_json(r.context),
                r.prev_hash,
                r.hash,
            )
            for r in rows
        ]
        if len(values) == 1:
            cursor.execute(sql["insert"] + sql["row"], values[0])
        elif connection.vendor == "sqlite":
            size = max(1, connection.ops.bulk_batch_size(sql["fields"], values))
            for start in range(0, len(values), size):
                batch = values[start : start + size]
                cursor.execute(
                    sql["insert"] + ", ".join([sql["row"]] * len(batch)),
                    [value for row in batch for value in row],
                )
        else:
            cursor.executemany(sql["insert"] + sql["row"], values)


def _scalar(value: Any) -> str:
    """JSON for a column value that _json_safe accepted."""
    if value is None:
        return "null"
    return _quote(value) if type(value) is str else repr(value)


def _statements(connection: Any) -> dict[str, Any]:
    """The SQL pieces of :func:`_insert` for ``connection``, built once."""
    cached = connection.__dict__.get("_signaltrail_sql")
    if cached is not None:
        return cached
    from .models import Event

    meta = Event._meta
    fields = [meta.get_field(name) for name in COLUMNS]
    qn = connection.ops.quote_name
    postgresql = connection.vendor == "postgresql"
    head = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
    holders = [
        "%s::jsonb" if postgresql and isinstance(f, models.JSONField) else "%s" for f in fields
    ]
    sql: dict[str, Any] = {
        "fields": fields,
        "insert": head + "VALUES ",
        "row": f"({', '.join(holders)})",
    }
    if postgresql:
        columns = []
        for i, f in enumerate(fields[1:]):
            if isinstance(f, models.JSONField):
                columns.append(f"e->{i}")
            elif f.get_internal_type() in ("CharField", "TextField"):
                # Assigned as text: a value too long for the column fails as
                # with the ORM (an explicit cast would truncate it silently).
                columns.append(f"e->>{i}")
            else:
                db_type = (
                    f.target_field.rel_db_type(connection)
                    if f.is_relation
                    else f.db_type(connection)
                )
                columns.append(f"(e->>{i})::{db_type}")
        sql["json_rows"] = (
            f"{head}SELECT %s, {', '.join(columns)} "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS rows(e, n) ORDER BY n"
        )
    connection.__dict__["_signaltrail_sql"] = sql
    return sql


def _json_safe(value: Any) -> bool:
    """Whether a column value goes into the JSON array of rows as itself."""
    return value is None or type(value) is int or type(value) is str


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
    return write(using, [entry], returning=True)[0]

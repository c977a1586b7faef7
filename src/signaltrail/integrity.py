"""Tamper evidence for the trail.

Each event carries ``hash``, an HMAC (keyed by ``SECRET_KEY``) of its content
and of ``prev_hash``, the hash of the newest event visible when it was
written. So:

- editing any recorded column changes the content: the HMAC no longer matches;
- inserting a row needs the key to produce a valid HMAC;
- deleting a row leaves the event written after it pointing at a hash that is
  gone, and moving rows around (changing ids) makes an event point at one
  that comes *later*.

Writers don't lock anything: two concurrent transactions may both point at
the same predecessor, so the chain may fork, which verification accepts.
What it cannot see is the deletion of the newest events (nothing points at
them yet) or of an event nothing else pointed at because of such a fork.

Numbers are canonicalized so that the HMAC survives PostgreSQL's ``jsonb``,
which keeps numbers as ``numeric`` (``1e16`` comes back as an integer).
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

KEY_SALT = "signaltrail.integrity"


def _canon(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float | decimal.Decimal):
        number = decimal.Decimal(repr(value) if isinstance(value, float) else value)
        out.append("0" if number == 0 else str(number.normalize()))
    elif isinstance(value, str):
        out.append(json.dumps(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _canon(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _canon(item, out)
        out.append("]")
    else:
        out.append(json.dumps(str(value)))


def _timestamp(at: datetime.datetime) -> str:
    if at.tzinfo is not None:
        at = at.astimezone(datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")


def canonical(
    *,
    at: datetime.datetime,
    action: str,
    actor_label: str,
    content_type_id: int | None,
    object_pk: str,
    object_repr: str,
    changes: Any,
    context: Any,
    prev_hash: str,
) -> str:
    """The exact text the HMAC covers.

    ``actor_id`` is left out on purpose: deleting a user legitimately sets it
    to NULL (``actor_label`` keeps who it was). The content type is covered by
    id, which renaming a model (``RenameModel``) keeps.
    """
    out: list[str] = []
    _canon(
        [
            _timestamp(at),
            action,
            actor_label,
            content_type_id,
            object_pk,
            object_repr,
            changes,
            context,
            prev_hash,
        ],
        out,
    )
    return "".join(out)


def compute_hash(text: str, secret: str | bytes | None = None) -> str:
    return salted_hmac(KEY_SALT, text, secret=secret, algorithm="sha256").hexdigest()


def latest_hash(using: str) -> str:
    """The hash of the newest event on ``using`` ("" when there is none)."""
    from .models import Event

    table = connections[using].ops.quote_name(Event._meta.db_table)
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT hash FROM {table} ORDER BY id DESC LIMIT 1")
        row = cursor.fetchone()
    return row[0] if row else ""


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`verify`."""

    event_id: int
    kind: str  # "modified", "duplicate" or "broken_chain"
    message: str


def _secrets() -> list[str | bytes]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def verify(using: str = "default", chunk_size: int = 2000) -> Iterator[tuple[int, Problem | None]]:
    """Check every event on ``using`` in id order.

    Yields ``(event_id, problem or None)`` for each row so a caller can show
    progress; memory grows with the number of events (one hash and id each).
    """
    from .models import Event

    secrets = _secrets()
    seen: dict[str, int] = {}  # hash -> id of the first event that has it
    genesis_allowed = True
    rows = (
        Event.objects.using(using)
        .order_by("id")
        .values_list(
            "id",
            "at",
            "action",
            "actor_label",
            "content_type_id",
            "object_pk",
            "object_repr",
            "changes",
            "context",
            "prev_hash",
            "hash",
        )
        .iterator(chunk_size=chunk_size)
    )
    for pk, at, action, label, ct_id, object_pk, repr_, changes, ctx, prev, digest in rows:
        problem = None
        text = canonical(
            at=at,
            action=action,
            actor_label=label,
            content_type_id=ct_id,
            object_pk=object_pk,
            object_repr=repr_,
            changes=changes,
            context=ctx,
            prev_hash=prev,
        )
        if digest in seen:
            # A verbatim copy of a genuine row matches its HMAC and points at a
            # real predecessor; only its hash gives it away (every genuine
            # event's hash covers a different content or predecessor).
            problem = Problem(
                pk,
                "duplicate",
                _(
                    "Event %(id)s has the same hash as event %(other)s: one of them is a "
                    "copy inserted outside signaltrail."
                )
                % {"id": pk, "other": seen[digest]},
            )
        elif not any(constant_time_compare(compute_hash(text, s), digest) for s in secrets):
            problem = Problem(
                pk,
                "modified",
                _(
                    "Event %(id)s does not match its hash: it was changed, or "
                    "inserted, outside signaltrail."
                )
                % {"id": pk},
            )
        elif prev:
            genesis_allowed = False
            if prev not in seen:
                problem = Problem(
                    pk,
                    "broken_chain",
                    _(
                        "Event %(id)s follows an event that is missing or comes later: "
                        "events were deleted or reordered."
                    )
                    % {"id": pk},
                )
        elif not genesis_allowed:
            problem = Problem(
                pk,
                "broken_chain",
                _("Event %(id)s starts a new chain: earlier events were deleted or reordered.")
                % {"id": pk},
            )
        seen.setdefault(digest, pk)
        yield pk, problem

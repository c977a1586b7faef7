"""Tamper evidence for the trail.

Each event carries ``hash``, an HMAC (keyed by ``SECRET_KEY``) of its content
and of ``prev_hash``, the hash of the newest event visible when it was
written (after the first event of a transaction, the transaction's own last
event, known without a query: see :func:`chain_head`). So:

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
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.translation import gettext as _

KEY_SALT = "signaltrail.integrity"

# --------------------------------------------------------------------------
# The canonical text
# --------------------------------------------------------------------------


def _canon(value: Any, out: list[str]) -> None:
    """The reference encoder: every value, one token at a time.

    :func:`_text` produces the same bytes faster for the common types and
    hands everything else (floats, Decimals, subclasses, odd keys) here.
    """
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


def _slow(value: Any) -> str:
    out: list[str] = []
    _canon(value, out)
    return "".join(out)


# Below this, an int's normalized Decimal has all its digits (the default
# context keeps 28): no rounding to reproduce.
_EXACT_INT = 10**27


def _int_text(value: int) -> str:
    """``_slow(value)`` for an int: as Decimal's ``normalize()`` prints it.

    Trailing zeros become a positive exponent in scientific notation (100 is
    ``1E+2``, -120 is ``-1.2E+2``); other ints print as themselves.
    """
    if value % 10:
        if -_EXACT_INT < value < _EXACT_INT:
            return repr(value)
        return _slow(value)
    if value == 0:
        return "0"
    digits = repr(value)
    sign = ""
    if digits[0] == "-":
        sign, digits = "-", digits[1:]
    if len(digits) > 27:
        return _slow(value)
    kept = digits.rstrip("0")
    mantissa = f"{kept[0]}.{kept[1:]}" if len(kept) > 1 else kept
    return f"{sign}{mantissa}E+{len(digits) - 1}"


def _item(value: Any) -> str:
    # The leaves of [old, new] pairs are mostly these: no call to _text.
    kind = type(value)
    if kind is str:
        return _quote(value)
    if value is None:
        return "null"
    if kind is int:
        return _int_text(value)
    return _text(value)


def _text(value: Any) -> str:
    """``_slow(value)``, byte for byte, without its per-token overhead.

    Exact types are dispatched first; a ``str`` subclass, a float, a Decimal
    or a dict with keys other than strings take the reference path.
    ``json.dumps(s)`` with the default settings is ``encode_basestring_ascii(s)``.
    """
    kind = type(value)
    if kind is str:
        return _quote(value)
    if value is None:
        return "null"
    if kind is int:
        return _int_text(value)
    if kind is list or kind is tuple:
        if len(value) == 2:  # [old, new]
            first, second = value
            return f"[{_item(first)},{_item(second)}]"
        return "[" + ",".join([_item(item) for item in value]) + "]"
    if kind is dict:
        try:
            keys = sorted(value)
        except TypeError:
            return _slow(value)
        parts = []
        for key in keys:
            if type(key) is not str:
                return _slow(value)
            item = value[key]
            if type(item) is list and len(item) == 2:  # changes: {"field": [old, new]}
                first, second = item
                parts.append(f"{_quote(key)}:[{_item(first)},{_item(second)}]")
            else:
                parts.append(f"{_quote(key)}:{_item(item)}")
        return "{" + ",".join(parts) + "}"
    if kind is bool:
        return "true" if value else "false"
    return _slow(value)


def timestamp_text(at: datetime.datetime) -> str:
    """The canonical form of an event's ``at``: UTC, microseconds, quoted."""
    if at.tzinfo is not None and at.tzinfo is not datetime.UTC:
        at = at.astimezone(datetime.UTC)
    if at.year >= 1000:
        # What strftime("%Y-%m-%dT%H:%M:%S.%f") gives, about 4x faster.
        return _quote(at.replace(tzinfo=None).isoformat(timespec="microseconds"))
    return _quote(at.strftime("%Y-%m-%dT%H:%M:%S.%f"))


def row_head(at_text: str, action: str, actor_label: str, content_type_id: int | None) -> str:
    """The start of the canonical text, which the events of one write often share."""
    return f"[{at_text},{_item(action)},{_item(actor_label)},{_item(content_type_id)},"


def row_text(
    head: str,
    object_pk: str,
    object_repr: str,
    changes_text: str,
    context_text: str,
    prev_hash: str,
) -> str:
    """The canonical text (see :func:`canonical`) from parts already encoded.

    The writer encodes what its events share (the head, the context) once
    per call rather than once per event.
    """
    return (
        f"{head}{_item(object_pk)},{_item(object_repr)},{changes_text},{context_text},"
        f"{_item(prev_hash)}]"
    )


def encode(value: Any) -> str:
    """The canonical text of one JSON column's value."""
    return _text(value)


def encode_changes(changes: Any) -> tuple[str, str | None]:
    """``(encode(changes), json.dumps(changes))``, sharing the work when it can.

    An event's ``changes`` is nearly always ``{"field": [old, new]}`` with
    strings, ints and nulls: both texts are then built in one pass (the JSON
    exactly as ``json.dumps`` writes it: insertion order, ", " and ": ",
    ``repr`` of ints). Anything else gives ``(encode(changes), None)``: the
    caller serializes the JSON itself.
    """
    if type(changes) is not dict:
        return _text(changes), None
    canonical: dict[str, str] = {}
    stored: list[str] = []
    for key, item in changes.items():
        if type(key) is not str or type(item) is not list or len(item) != 2:
            return _text(changes), None
        old, new = item
        kind = type(old)
        if old is None:
            old_text = old_json = "null"
        elif kind is str:
            old_text = old_json = _quote(old)
        elif kind is int:
            old_json = repr(old)
            old_text = _int_text(old)
        else:
            return _text(changes), None
        kind = type(new)
        if new is None:
            new_text = new_json = "null"
        elif kind is str:
            new_text = new_json = _quote(new)
        elif kind is int:
            new_json = repr(new)
            new_text = _int_text(new)
        else:
            return _text(changes), None
        quoted = _quote(key)
        canonical[key] = f"{quoted}:[{old_text},{new_text}]"
        stored.append(f"{quoted}: [{old_json}, {new_json}]")
    return (
        "{" + ",".join([canonical[key] for key in sorted(canonical)]) + "}",
        "{" + ", ".join(stored) + "}",
    )


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

    The format is a JSON-like array with sorted keys, no spaces, ASCII-only
    strings and numbers normalized as Decimals (``1E+2``, ``0.1``), so that
    it survives PostgreSQL's ``jsonb``. It must never change for existing
    rows: :func:`_canon` is the reference, :func:`_text` its fast equivalent.
    """
    return row_text(
        row_head(timestamp_text(at), action, actor_label, content_type_id),
        object_pk,
        object_repr,
        _text(changes),
        _text(context),
        prev_hash,
    )


# --------------------------------------------------------------------------
# The HMAC
# --------------------------------------------------------------------------

# Signing functions by secret: salted_hmac derives the key (one SHA-256) on
# every call; the writer signs one event per row. Bounded: secrets are few,
# but a test suite may set many.
_signers: dict[str | bytes, Callable[[str], str]] = {}


def signer(secret: str | bytes | None = None) -> Callable[[str], str]:
    """A function computing :func:`compute_hash` for one secret, its key derived once."""
    if secret is None:
        secret = settings.SECRET_KEY
    sign = _signers.get(secret)
    if sign is None:
        # What django.utils.crypto.salted_hmac derives: sha256(salt + secret).
        key = hashlib.sha256(force_bytes(KEY_SALT) + force_bytes(secret)).digest()

        def sign(text: str) -> str:
            return hmac.digest(key, force_bytes(text), "sha256").hex()

        if len(_signers) > 32:
            _signers.clear()
        _signers[secret] = sign
    return sign


def compute_hash(text: str, secret: str | bytes | None = None) -> str:
    """``salted_hmac(KEY_SALT, text, secret, algorithm="sha256").hexdigest()``."""
    return signer(secret)(text)


# --------------------------------------------------------------------------
# The chain's head
# --------------------------------------------------------------------------

_HEAD = "_signaltrail_chain_head"


def latest_hash(using: str) -> str:
    """The hash of the newest event on ``using`` ("" when there is none)."""
    return _latest(connections[using])


def _latest(connection: Any) -> str:
    from .models import Event

    table = connection.ops.quote_name(Event._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT hash FROM {table} ORDER BY id DESC LIMIT 1")
        row = cursor.fetchone()
    return row[0] if row else ""


def _transaction_marker(connection: Any) -> Any:
    """An object that stays the same exactly as long as the current transaction.

    Django replaces ``connection.run_on_commit`` with a new list whenever a
    transaction ends (commit: ``run_and_clear_commit_hooks``; rollback) and
    whenever a savepoint is rolled back (the callbacks registered in it are
    dropped), and appends to it in place otherwise. So, while the same list
    is there, every event written on this connection since is still in the
    database, uncommitted, in this very transaction. Only a transaction
    opened by ``atomic()`` in autocommit mode counts (``commit_on_exit``):
    with autocommit turned off by hand, ``commit()`` keeps the list.
    """
    if not (connection.in_atomic_block and connection.commit_on_exit):
        return None
    return getattr(connection, "run_on_commit", None)


def chain_head(connection: Any) -> str:
    """The hash the next event on ``connection`` points at.

    That is the newest event visible (one SELECT), except after an event was
    written in the same transaction: then it is the last one written, with
    no query. The two differ only if another transaction committed events
    in between - a concurrent transaction, whose fork of the chain
    verification accepts anyway.
    """
    head = connection.__dict__.get(_HEAD)
    if head is not None:
        marker = _transaction_marker(connection)
        if marker is not None and head[0] is marker:
            return head[1]
        # Stale: drop it, and the reference to an old list with it.
        del connection.__dict__[_HEAD]
    return _latest(connection)


def set_chain_head(connection: Any, digest: str) -> None:
    """Note ``digest`` as the newest event of the current transaction on ``connection``."""
    marker = _transaction_marker(connection)
    if marker is None:
        connection.__dict__.pop(_HEAD, None)
    else:
        connection.__dict__[_HEAD] = (marker, digest)


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

    signers = [signer(s) for s in _secrets()]
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
        elif not any(constant_time_compare(sign(text), digest) for sign in signers):
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

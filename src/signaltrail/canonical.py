"""The canonical text of an event, and its HMAC.

:mod:`signaltrail.integrity` signs each event and checks the signatures; what
exactly is signed lives here, apart, because it must never change for rows
already written: a fixed, JSON-like text of the event's columns (see
:func:`canonical`), and the HMAC of it keyed by ``SECRET_KEY``.

Two encoders produce that text: :func:`_canon`, the reference, one token at a
time, and :func:`_text`, its fast equivalent for the types events nearly
always hold. The writer encodes what the events of one call share once, from
the parts (:func:`row_head`, :func:`row_text`, :func:`encode_changes`).

Numbers are canonicalized so that the HMAC survives PostgreSQL's ``jsonb``,
which keeps numbers as ``numeric`` (``1e16`` comes back as an integer).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import hashlib
import hmac
import json
import operator
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from django.conf import settings
from django.utils.encoding import force_bytes

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


_NULL = ("null", "null")


def _leaf(value: Any) -> tuple[str, str] | None:
    """(canonical text, ``json.dumps`` text) of a None, str or int; else None."""
    if value is None:
        return _NULL
    kind = type(value)
    if kind is str:
        text = _quote(value)
        return text, text
    if kind is int:
        return _int_text(value), repr(value)
    return None


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
        old, new = _leaf(item[0]), _leaf(item[1])
        if old is None or new is None:
            return _text(changes), None
        quoted = _quote(key)
        canonical[key] = f"{quoted}:[{old[0]},{new[0]}]"
        stored.append(f"{quoted}: [{old[1]}, {new[1]}]")
    return (
        "{" + ",".join([canonical[key] for key in sorted(canonical)]) + "}",
        "{" + ", ".join(stored) + "}",
    )


PairsEncoder = Callable[[list[Any]], tuple[str, str] | None]


@functools.lru_cache(maxsize=1024)  # saves of a model update several sets of fields
def pairs_encoder(
    names: tuple[str, ...], created: bool = False, deleted: bool = False
) -> PairsEncoder:
    """:func:`encode_changes` for many rows with the same fields, in that order.

    The returned function takes the values flat, ``[old, new, old, new, ...]``
    in the order of ``names`` (with ``created``, only the new values: every
    old one is None; with ``deleted``, only the old ones), and returns what
    ``encode_changes`` returns for ``{name: [old, new], ...}``, or None for
    a value other than None, a string, an int or a bool (the caller then
    builds the dict). The bulk paths write thousands of such rows per call,
    a deletion one per row: the quoted names, their sorted order and the
    punctuation are laid out once, as two templates, and no dict or list of
    pairs is built per row.
    """
    keys = [_quote(name).replace("%", "%%") for name in names]
    if created:
        pairs = [("null", "%s") for _ in names]
        leaf_of = [[i] for i in range(len(names))]
    elif deleted:
        pairs = [("%s", "null") for _ in names]
        leaf_of = [[i] for i in range(len(names))]
    else:
        pairs = [("%s", "%s") for _ in names]
        leaf_of = [[2 * i, 2 * i + 1] for i in range(len(names))]
    order = sorted(range(len(names)), key=names.__getitem__)
    canonical_template = (
        "{" + ",".join(f"{keys[i]}:[{pairs[i][0]},{pairs[i][1]}]" for i in order) + "}"
    )
    stored_template = (
        "{"
        + ", ".join(f"{key}: [{old}, {new}]" for key, (old, new) in zip(keys, pairs, strict=True))
        + "}"
    )
    # The leaves in the canonical text's order, as a tuple whatever their number.
    sorted_leaves = [leaf for i in order for leaf in leaf_of[i]]
    if len(sorted_leaves) == 1:
        pick: Callable[[list[str]], tuple[str, ...]] = lambda leaves: (leaves[0],)  # noqa: E731
    elif sorted_leaves:
        pick = operator.itemgetter(*sorted_leaves)
    else:
        pick = lambda leaves: ()  # noqa: E731

    def encode(values: list[Any]) -> tuple[str, str] | None:
        stored = []
        differ = None  # the canonical leaves, where an int is written otherwise
        for value in values:
            kind = type(value)
            if kind is str:
                stored.append(_quote(value))
            elif value is None:
                stored.append("null")
            elif kind is int:
                if value % 10 == 0 or not -_EXACT_INT < value < _EXACT_INT:
                    if differ is None:
                        differ = {}
                    differ[len(stored)] = _int_text(value)
                stored.append(repr(value))
            elif kind is bool:
                stored.append("true" if value else "false")
            else:
                return None
        if differ is None:
            return canonical_template % pick(stored), stored_template % tuple(stored)
        leaves = list(stored)
        for i, text in differ.items():
            leaves[i] = text
        return canonical_template % pick(leaves), stored_template % tuple(stored)

    return encode


def pairs_dict(
    names: Sequence[str], values: list[Any], created: bool = False, deleted: bool = False
) -> dict[str, list[Any]]:
    """``{name: [old, new], ...}`` from values laid out as :func:`pairs_encoder` takes them.

    What the callers of ``pairs_encoder`` store when it returns None.
    """
    if created:
        return {name: [None, value] for name, value in zip(names, values, strict=True)}
    if deleted:
        return {name: [value, None] for name, value in zip(names, values, strict=True)}
    return {name: values[2 * i : 2 * i + 2] for i, name in enumerate(names)}


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
        # Keyed once: each message then starts from a copy of the keyed state
        # instead of hashing the padded key again (about a third faster).
        copy_keyed = hmac.new(key, digestmod=hashlib.sha256).copy

        def sign(text: str) -> str:
            mac = copy_keyed()
            mac.update(text.encode())
            return mac.hexdigest()

        if len(_signers) > 32:
            _signers.clear()
        _signers[secret] = sign
    return sign


def compute_hash(text: str, secret: str | bytes | None = None) -> str:
    """``salted_hmac(KEY_SALT, text, secret, algorithm="sha256").hexdigest()``."""
    return signer(secret)(text)

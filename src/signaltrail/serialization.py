"""Turning field values into JSON for ``Event.changes`` (and back).

A serializer is chosen once per field (see :func:`serializer_for`) so that a
save pays for a dict lookup, not for type sniffing. Whatever a field holds,
serializing never raises: a value nothing knows how to encode is recorded as
its ``repr``, because a user's save must never fail on account of the trail.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import uuid
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils.duration import duration_iso_string
from django.utils.encoding import force_str
from django.utils.functional import Promise

Serializer = Callable[[Any], Any]

_encoder = DjangoJSONEncoder()


def safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"


def to_json(value: Any) -> Any:
    """Serialize any Python value into JSON-compatible data, never raising."""
    try:
        return _to_json(value)
    except Exception:
        return safe_repr(value)


def _to_json(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        if type(value) in (bool, int, str):
            return value
        # Subclasses (IntEnum, str-based enums and choices, SafeString) become
        # the plain value a database driver would store, whatever their __str__.
        return int(value) if isinstance(value, int) else str.__str__(value)
    if isinstance(value, float):
        # NaN and infinities are not JSON; PostgreSQL's jsonb rejects them.
        return float(value) if math.isfinite(value) else repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, FieldFile):
        return value.name or None
    if isinstance(value, Promise):
        return force_str(value)
    if isinstance(value, dict):
        return {force_str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_json(v) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=repr)
        return items
    if isinstance(value, models.Model):
        return to_json(value.pk)
    if hasattr(value, "lower") and hasattr(value, "upper") and hasattr(value, "bounds"):
        # psycopg's Range (contrib.postgres range fields).
        return {
            "lower": to_json(value.lower),
            "upper": to_json(value.upper),
            "bounds": value.bounds,
        }
    return _encoder.default(value)


def _binary(value: Any) -> Any:
    if value is None:
        return None
    return base64.b64encode(bytes(value)).decode("ascii")


def _file(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, FieldFile):
        return value.name or None
    return force_str(value) or None


def _plain(value: Any) -> Any:
    if value is None or type(value) in (int, str, bool):
        return value
    return to_json(value)


def _decimal(value: Any) -> Any:
    # What to_json() gives a Decimal, without asking what else it might be.
    if type(value) is decimal.Decimal:
        return str(value)
    return _plain(value)


_TEMPORAL = frozenset({datetime.datetime, datetime.date, datetime.time})


def _temporal(value: Any) -> Any:
    if type(value) in _TEMPORAL:
        try:
            return value.isoformat()
        except Exception:  # a tzinfo whose utcoffset() fails: to_json() copes
            return to_json(value)
    return _plain(value)


def serializer_for(field: models.Field) -> Serializer:
    """Return the function that serializes values of ``field``."""
    if isinstance(field, models.BinaryField):
        return _binary
    if isinstance(field, models.FileField):
        return _file
    if isinstance(field, models.DecimalField):
        return _decimal
    if isinstance(field, models.DateField | models.TimeField):  # DateTimeField too
        return _temporal
    return _plain


# Fields whose Python values are mutable containers: their loaded values are
# copied so that in-place changes (obj.data["k"] = 1) are seen as changes.
MUTABLE_FIELD_CLASSES: tuple[type[models.Field], ...] = (models.JSONField,)
try:  # contrib.postgres needs psycopg; without it those fields can't exist.
    from django.contrib.postgres.fields import ArrayField, HStoreField

    MUTABLE_FIELD_CLASSES += (ArrayField, HStoreField)
except ImportError:  # pragma: no cover - depends on the installed driver
    pass


def is_mutable(field: models.Field) -> bool:
    return isinstance(field, MUTABLE_FIELD_CLASSES)


def from_json(field: models.Field, value: Any) -> Any:
    """Turn a recorded value back into a Python value for ``field``.

    Used by ``as_of`` and ``revert``. Values that no longer parse (a field
    changed type since) are returned as recorded.
    """
    if value is None:
        return None
    if isinstance(field, models.BinaryField):
        try:
            return base64.b64decode(value)
        except (ValueError, TypeError):
            return value
    if isinstance(field, models.JSONField):
        return value
    if isinstance(field, models.ForeignKey):
        field = field.target_field
    try:
        return field.to_python(value)
    except Exception:
        return value

"""Whether a field's new value is the one already stored.

Shared by single saves (:mod:`signaltrail.capture`) and the bulk paths
(:mod:`signaltrail.bulk_rows`): an update records only the fields whose
value really changed, compared as the database will hold them.
"""

from __future__ import annotations

from typing import Any

from django.db import models


def same_value(field: models.Field, old: Any, new: Any) -> tuple[bool, Any]:
    """Compare a stored value with a new one; return (same, normalized new).

    A new value of another type than the stored one (``"3"`` or ``3`` for a
    DecimalField) is first turned into the field's Python type, so that it
    compares, and is recorded, as the database will hold it.
    """
    try:
        if isinstance(field, models.JSONField):
            return old == new and json_same(old, new), new
        if type(old) is type(new) and old == new:
            return True, new
        if new is not None and type(old) is not type(new):
            target = field.target_field if isinstance(field, models.ForeignKey) else field
            new = target.to_python(new)
            return bool(old == new), new
        return False, new
    except Exception:
        return False, new


def json_same(a: Any, b: Any) -> bool:
    """Equality as JSON has it: ``true`` is not ``1`` (Python says it is).

    Numbers still compare by value: PostgreSQL's jsonb may hand back ``1e16``
    as an integer.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_same(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(json_same, a, b))
    return bool(a == b)

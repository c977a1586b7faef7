"""``object_repr``: the text an event keeps of the object it describes.

It is ``str(instance)``, but taken so that nothing the user can observe
changes: ``__str__`` runs on a copy (so what it loads stays off the caller's
instance) and its failures become Django's default ``"Model object (pk)"``.
Apart from the writer because every capture path (saves, m2m, bulk, auth,
revert) computes it before anything is written.
"""

from __future__ import annotations

import copy

from django.db import models
from django.db.models.base import ModelState
from django.db.models.fetch_modes import FETCH_RAISE
from django.utils.encoding import force_str

from .conf import conf
from .serialization import safe_repr

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
    new_state.__dict__ = state_values  # the copies become the new objects' own dicts
    values["_state"] = new_state
    new = cls.__new__(cls)
    new.__dict__ = values
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

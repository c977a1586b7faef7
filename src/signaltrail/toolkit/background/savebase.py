"""One transaction for a save and its post_save receivers, in autocommit mode.

Django commits a plain ``save()`` (autocommit mode) *before* it sends
``post_save``, so a pending call written by a ``post_save`` receiver would
commit on its own, after the change: a process dying in between would lose
it. For the models an ``@in_background`` ``pre_save``/``post_save`` receiver
listens to, ``save_base`` is therefore wrapped: in autocommit mode the whole
save - its ``pre_save`` and ``post_save`` receivers included - runs in one
``atomic()`` block, as every save inside ``atomic()`` already does. Inside a
transaction, and for models no such receiver listens to, the wrapper only
costs a dict lookup.

The wrapper also keeps the values the row held before the save (the trail's
snapshot, which the save replaces by the new values), for ``calls.changes``.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from django.db import models, router, transaction

from ...snapshot import snapshot

# Senders (None: every model) that an @in_background pre_save/post_save
# receiver listens to -> how many such receivers.
_atomic_senders: dict[Any, int] = {}
_lock = threading.Lock()


def need_atomic_save(sender: Any, delta: int) -> None:
    if isinstance(sender, str):
        # A lazy "app_label.Model" sender, as model signals accept: resolved
        # once that model is loaded.
        from django.apps import apps

        app_label, _, model_name = sender.partition(".")
        apps.lazy_model_operation(
            lambda model: need_atomic_save(model, delta), (app_label, model_name.lower())
        )
        return
    with _lock:
        count = _atomic_senders.get(sender, 0) + delta
        if count > 0:
            _atomic_senders[sender] = count
        else:
            _atomic_senders.pop(sender, None)
        if delta > 0:
            is_model = isinstance(sender, type) and issubclass(sender, models.Model)
            _wrap_save_base(sender if is_model else models.Model)


def _wrap_save_base(model: type[models.Model]) -> None:
    current = model.__dict__.get("save_base")
    if current is not None and getattr(current, "_signaltrail_background", False):
        return
    original = model.save_base

    @functools.wraps(original)
    def save_base(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        cls = type(self)
        if cls not in _atomic_senders and None not in _atomic_senders:
            return original(self, *args, **kwargs)
        # What the row held before this save, for calls.changes(): the
        # trail's snapshot is replaced by the new values during the save.
        self._state.trail_bg_before = snapshot(self)  # type: ignore[attr-defined]
        using = kwargs.get("using") or (args[3] if len(args) > 3 else None)
        using = using or router.db_for_write(cls, instance=self)
        if transaction.get_connection(using).in_atomic_block:
            return original(self, *args, **kwargs)
        with transaction.atomic(using=using, savepoint=False):
            return original(self, *args, **kwargs)

    save_base._signaltrail_background = True  # type: ignore[attr-defined]
    model.save_base = save_base  # type: ignore[method-assign]

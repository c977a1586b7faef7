"""The content type id of each event's model, found without a ContentType instance.

``ContentType.objects.get_for_model()`` would do, but on a cold cache it
builds a ``ContentType`` instance, and Django sends ``pre_init`` and
``post_init`` for it to every receiver connected without a sender: the
trail's bookkeeping would show in the user's signals. So the writer keeps its
own ids, by database alias, read with one ``values_list`` query of every
content type of that database (no instance is built) the first time an event
is written there. Only a model without a row builds one, with
``get_or_create()``, which creates the row.

The ids are dropped whenever content types may change:

- ``post_migrate``, which ``migrate`` and ``flush`` send, and after which
  Django recreates the missing content types;
- ``post_save``, ``pre_delete`` and ``post_delete`` of ``ContentType``: every
  change made through the ORM, cascades, ``QuerySet.delete()`` and
  ``RenameModel``'s ``RenameContentType`` included;
- ``ContentType.objects.clear_cache()``, which is wrapped for this: whoever
  changes content types behind the ORM's back and clears Django's cache
  (tests after deleting or recreating rows, ``remove_stale_contenttypes``)
  clears these ids too.

A transaction that changes a content type through the ORM may still roll
back: ids read in it are used in it but not kept, and a model without an id
gets its row from ``get_or_create()``, not from Django's cache, which keeps
the ids of rows a rollback removed. (A savepoint rolled back after such a
change ends this early.) As with Django's own cache, what none of these see
stays unseen: rows changed by raw SQL, ``QuerySet.update()`` or
``bulk_create()`` with no ``clear_cache()`` after. Ids are never checked by
catching an error: a user's save must not fail for the trail's bookkeeping.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from django.db import connections, models
from django.db.models.signals import post_delete, post_migrate, post_save, pre_delete

# By alias: {(app_label, model_name): content type id}.
_ids: dict[str, dict[tuple[str, str], int]] = {}
# Bumped by every clear: ids read before a clear are not stored after it.
_generation = 0
_lock = threading.Lock()
# On a connection whose open transaction changed a content type: that
# transaction's on-commit list, which Django replaces when it ends.
_UNSETTLED = "_signaltrail_content_types_unsettled"


def content_type_id(using: str, model: type[models.Model]) -> int:
    """What ``get_for_model(model).pk`` gives on ``using`` (a proxy: its concrete model's)."""
    content_type = _install()
    opts = model._meta.concrete_model._meta
    key = (opts.app_label, opts.model_name)
    ids = _ids.get(using)
    if ids is None:
        ids = _load(content_type, using)
    found = ids.get(key)
    if found is None:
        # No row yet: created (its post_save drops the ids read here).
        row, _ = content_type.objects.db_manager(using).get_or_create(
            app_label=opts.app_label, model=opts.model_name
        )
        found = row.pk
    return found


def _load(content_type: Any, using: str) -> dict[tuple[str, str], int]:
    generation = _generation
    rows = content_type.objects.db_manager(using).values_list("app_label", "model", "pk")
    ids = {(app_label, model): pk for app_label, model, pk in rows}
    with _lock:
        if generation == _generation and not _unsettled(using):
            _ids[using] = ids
    return ids


def _unsettled(using: str) -> bool:
    """Whether the open transaction on ``using`` changed a content type."""
    connection = connections[using]
    mark = connection.__dict__.get(_UNSETTLED)
    if mark is None:
        return False
    if mark is connection.run_on_commit and connection.in_atomic_block:
        return True
    del connection.__dict__[_UNSETTLED]  # that transaction has ended
    return False


def changed(sender: Any, using: str | None = None, **kwargs: Any) -> None:
    """A content type was saved or deleted: drop every id, and note an open transaction."""
    clear()
    connection = connections[using or "default"]
    if connection.in_atomic_block:
        connection.__dict__[_UNSETTLED] = connection.run_on_commit


def clear(*args: Any, **kwargs: Any) -> None:
    """Drop every id (a signal receiver as well)."""
    global _generation
    with _lock:
        _generation += 1
        _ids.clear()


_installed: list[Any] = []  # [ContentType] once installed


def _install() -> Any:
    """Connect the receivers and wrap ``clear_cache``, once; return ContentType.

    Done on first use: there is nothing to clear before an id was read.
    """
    if _installed:
        return _installed[0]
    from django.contrib.contenttypes.models import ContentType, ContentTypeManager

    with _lock:
        if _installed:
            return _installed[0]
        # Under the "signaltrail.capture" prefix: muted() never silences the
        # trail's own receivers (toolkit/_dispatch.py), and a muted clear
        # would leave ids of rows that are gone.
        uid = "signaltrail.capture.content_types"
        post_migrate.connect(clear, dispatch_uid=uid)
        for signal in (post_save, pre_delete, post_delete):
            signal.connect(changed, sender=ContentType, dispatch_uid=uid)
        original = ContentTypeManager.clear_cache

        @functools.wraps(original)
        def clear_cache(self: Any) -> None:
            original(self)
            clear()

        ContentTypeManager.clear_cache = clear_cache  # type: ignore[method-assign]
        _installed.append(ContentType)
    return ContentType

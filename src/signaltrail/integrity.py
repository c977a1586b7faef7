"""Tamper evidence for the trail.

Each event carries ``hash``, an HMAC (keyed by ``SECRET_KEY``) of its content
and of ``prev_hash``, the hash of an earlier event: the one this connection
wrote last in the same transaction, else the newest one this connection saw
committed, else (a connection's first event) the newest event visible, which
costs one SELECT (see :func:`chain_head`). So:

- editing any recorded column changes the content: the HMAC no longer matches;
- inserting a row needs the key to produce a valid HMAC;
- deleting a row leaves the event written after it pointing at a hash that is
  gone, and moving rows around (changing ids) makes an event point at one
  that comes *later*; emptying the table while the application runs shows
  too, as the next event points at one that is gone.

Writers don't lock anything: connections (threads, processes) writing at the
same time each continue from their own last event, so the chain forks, which
verification accepts. What it cannot see is the deletion of the newest event
of such a branch (nothing points at it yet).

This module holds the chain: the hash the next event points at, and
:func:`verify`. What is signed, and how, is :mod:`signaltrail.canonical`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from .canonical import canonical, row_text, signer

if TYPE_CHECKING:
    from .inserts import Row

# --------------------------------------------------------------------------
# The chain's head
# --------------------------------------------------------------------------

_HEAD = "_signaltrail_chain_head"  # (transaction marker, hash): the open transaction's last
_COMMITTED = "_signaltrail_committed_head"  # (generation, hash): the last one seen committed
_COMMITTING = "_signaltrail_committing"  # set while held events go in just before COMMIT
# Bumped when the event table may have been emptied (``flush``, whose
# statements all go through ``execute_sql_flush``, even when it sends no
# post_migrate, as in TransactionTestCase with available_apps or
# serialized_rollback): a committed hash remembered before may be gone.
_generation = 0


def _latest(connection: Any) -> str:
    """The hash of the newest event on ``connection`` ("" when there is none)."""
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
    with autocommit turned off by hand, ``commit()`` keeps the list. While
    ``atomic()`` commits (:func:`committing`), the block has ended but its
    transaction and list are still there.
    """
    if not (
        (connection.in_atomic_block or _COMMITTING in connection.__dict__)
        and connection.commit_on_exit
    ):
        return None
    return getattr(connection, "run_on_commit", None)


@contextlib.contextmanager
def committing(connection: Any) -> Iterator[None]:
    """Events written inside are the last of a transaction about to commit."""
    connection.__dict__[_COMMITTING] = True
    try:
        yield
    finally:
        del connection.__dict__[_COMMITTING]


def chain_head(connection: Any) -> str:
    """The hash the next event on ``connection`` points at.

    Without a query: the last event written in the same transaction, or else
    the last one this connection saw committed. One SELECT of the newest
    event otherwise: a connection's first event, and after a rollback (a
    savepoint's included: what the transaction wrote before it is still
    there and newer than anything committed).
    """
    head = known_head(connection)
    return _latest(connection) if head is None else head


def known_head(connection: Any) -> str | None:
    """:func:`chain_head` if it is known without a query, else None."""
    state = connection.__dict__
    head = state.get(_HEAD)
    if head is not None:
        marker = _transaction_marker(connection)
        if marker is not None and head[0] is marker:
            return head[1]
        # Rolled back (a commit would have dropped it): drop it, and the
        # reference to an old list with it.
        del state[_HEAD]
        return None
    committed = state.get(_COMMITTED)
    if committed is not None and committed[0] == _generation:
        return committed[1]
    return None


def set_chain_head(connection: Any, digest: str) -> None:
    """Note ``digest`` as the newest event written on ``connection``.

    In a transaction, it is the head for the rest of it, and becomes the
    committed head if the transaction commits with it (see :func:`install`).
    """
    marker = _transaction_marker(connection)
    state = connection.__dict__
    if marker is not None:
        state[_HEAD] = (marker, digest)
        return
    state.pop(_HEAD, None)
    if connection.get_autocommit() and not connection.in_atomic_block:
        state[_COMMITTED] = (_generation, digest)  # already committed


class Chain:
    """Signs rows one after the other, each chained to the one before.

    The insert signs each row as it sends it: COPY sends rows as they come,
    so PostgreSQL stores the first ones while the next are signed (10,000
    events: the signing, about 15 ms, then overlaps the server's work
    instead of preceding it). ``head``: the hash of the last row signed.
    """

    def __init__(self, prev: str) -> None:
        self.head = prev
        self._sign = signer()

    def link(self, row: Row) -> tuple[str, str]:
        """The row's ``(prev_hash, hash)``."""
        prev = self.head
        digest = self.head = self._sign(
            row_text(
                row.head, row.object_pk, row.object_repr, row.changes_text, row.context_text, prev
            )
        )
        return prev, digest


def _note_commit(connection: Any) -> None:
    """The transaction on ``connection`` has just committed: keep its newest hash.

    Called as Django is about to run the on-commit callbacks, before them, so
    that events they write chain to it. The head is trusted only if Django's
    on-commit list is still the one it was written with: a rolled-back
    savepoint (one by hand too) replaces the list, and the newest event may
    then be gone; the next event then selects the newest hash.
    """
    state = connection.__dict__
    head = state.pop(_HEAD, None)
    if head is None:
        return
    if head[0] is connection.run_on_commit:
        state[_COMMITTED] = (_generation, head[1])
    else:  # unknown which of its events survived: the next one selects the newest
        state.pop(_COMMITTED, None)


def install() -> None:
    """Learn of commits and flushes: wrap two of Django's methods, once.

    ``run_and_clear_commit_hooks``: Django calls it on every connection
    right after a commit (and only then), whether or not anything was
    registered with ``on_commit()``. Nothing is registered there: a
    project's tests that count on-commit callbacks see only their own.
    ``execute_sql_flush``: what ``flush`` empties tables with.
    """
    original = BaseDatabaseWrapper.run_and_clear_commit_hooks
    if getattr(original, "_signaltrail", False):
        return
    original_flush = BaseDatabaseOperations.execute_sql_flush

    @functools.wraps(original_flush)
    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: Any) -> Any:
        try:
            return original_flush(self, sql_list)
        finally:
            forget_committed_heads()

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]

    @functools.wraps(original)
    def run_and_clear_commit_hooks(self: BaseDatabaseWrapper) -> None:
        if _HEAD in self.__dict__:
            _note_commit(self)
        original(self)

    run_and_clear_commit_hooks._signaltrail = True  # type: ignore[attr-defined]
    BaseDatabaseWrapper.run_and_clear_commit_hooks = run_and_clear_commit_hooks  # type: ignore[method-assign]


def forget_committed_heads(**kwargs: Any) -> None:
    """Stop trusting remembered hashes: the event table may have been emptied."""
    global _generation
    _generation += 1


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

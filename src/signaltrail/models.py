"""The ``Event`` table: one row per recorded change or custom event."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .exceptions import AppendOnlyError

# Labels are translated when shown (gettext_lazy), error messages when raised (gettext).


class Action(models.TextChoices):
    CREATE = "create", _("create")
    UPDATE = "update", _("update")
    DELETE = "delete", _("delete")
    M2M_ADD = "m2m_add", _("many-to-many add")
    M2M_REMOVE = "m2m_remove", _("many-to-many remove")
    M2M_CLEAR = "m2m_clear", _("many-to-many clear")
    LOGIN = "login", _("login")
    LOGOUT = "logout", _("logout")
    LOGIN_FAILED = "login_failed", _("failed login")
    TRAIL_PAUSED = "trail_paused", _("trail paused")


def action_label(action: str) -> str:
    """How an action reads to people: its label in the active language.

    The stored value stays as it is (it is data, and what queries filter on);
    a custom action recorded with ``signaltrail.record()`` has no label and
    reads as its value.
    """
    try:
        return str(Action(action).label)
    except ValueError:
        return action


class EventQuerySet(models.QuerySet["Event"]):
    """Queries over the trail. Rows can be read and added, never changed."""

    def for_object(self, obj: models.Model) -> EventQuerySet:
        """Events of one object (a proxy instance finds its concrete model's)."""
        ct = ContentType.objects.db_manager(self.db).get_for_model(obj)
        return self.filter(content_type=ct, object_pk=str(obj.pk))

    def for_model(self, model: type[models.Model] | models.Model) -> EventQuerySet:
        ct = ContentType.objects.db_manager(self.db).get_for_model(model)
        return self.filter(content_type=ct)

    def by_actor(self, user: Any) -> EventQuerySet:
        return self.filter(actor=user)

    def newest_first(self) -> EventQuerySet:
        return self.order_by("-at", "-id")

    def update(self, **kwargs: Any) -> int:
        # Deleting a user sets their events' actor to NULL (SET_NULL): the
        # one change allowed, because actor_label keeps who it was.
        if kwargs and all(k in ("actor", "actor_id") and v is None for k, v in kwargs.items()):
            return super().update(**kwargs)
        raise AppendOnlyError(gettext("Audit events are append-only: they cannot be updated."))

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> Any:
        raise AppendOnlyError(gettext("Audit events are append-only: they cannot be deleted."))

    delete.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        # Refused before Django opens its atomic(savepoint=False) block: an
        # error raised inside it would break the caller's transaction.
        raise AppendOnlyError(gettext("Audit events are append-only: they cannot be updated."))

    bulk_update.alters_data = True  # type: ignore[attr-defined]


EventManager = models.Manager.from_queryset(EventQuerySet)


class Event(models.Model):
    """One recorded event: who did what to which object, when and from where.

    ``hash`` is an HMAC of the row's content and of ``prev_hash``, the hash of
    the newest event that existed when this one was written; together they
    let ``manage.py trail verify`` detect rows edited, inserted, deleted or
    reordered behind the ORM's back (see :mod:`signaltrail.integrity`).
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(_("at"), db_index=True)
    action = models.CharField(_("action"), max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        # No database constraint: events may live on another database alias
        # than the users (multi-database projects), and inserting an event
        # must not lock the user's row.
        db_constraint=False,
        # Served by signaltrail_actor_idx (actor, at, id): a second index on
        # actor alone would only slow every insert down.
        db_index=False,
        related_name="+",
    )
    actor_label = models.TextField(_("actor label"), blank=True, default="")
    content_type = models.ForeignKey(
        ContentType,
        verbose_name=_("content type"),
        null=True,
        blank=True,
        # A content type with events must not vanish with its trail
        # (Django's deletion collector refuses it).
        on_delete=models.PROTECT,
        # No database constraint, as for actor: events may live on another
        # database alias than the content types, and a constraint would
        # lock the content type's row (FOR KEY SHARE) and check it once per
        # event at every commit (about 6% of a 10,000-row bulk_create() on
        # PostgreSQL). The ids come from the trail's own lookups, which
        # follow the ORM's changes to content types (content_types.py).
        db_constraint=False,
        # Served by the composite indexes that start with content_type.
        db_index=False,
        related_name="+",
    )
    object_pk = models.CharField(_("object id"), max_length=255, blank=True, default="")
    object_repr = models.TextField(_("object"), blank=True, default="")
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    context = models.JSONField(_("context"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64, blank=True, default="")
    hash = models.CharField(_("hash"), max_length=64)

    objects = EventManager()

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        base_manager_name = "objects"
        ordering = ("-at", "-id")
        # Why these indexes, for tables of millions of rows:
        # - (content_type, object_pk, at, id): history(obj) / for_object() is
        #   an equality on both columns then "newest first" - the index
        #   serves the filter and, scanned backwards, the ordering: no sort.
        # - (content_type, at, id): for_model() listings, newest first.
        # - (actor, at, id): by_actor() listings (a user's activity).
        # - at (db_index above): the global activity feed and date filters.
        indexes = [
            models.Index(
                fields=["content_type", "object_pk", "at", "id"],
                name="signaltrail_object_idx",
            ),
            models.Index(fields=["content_type", "at", "id"], name="signaltrail_model_idx"),
            models.Index(fields=["actor", "at", "id"], name="signaltrail_actor_idx"),
        ]

    def __str__(self) -> str:
        who = self.actor_label or _("nobody")
        what = self.object_repr or self.object_pk
        return f"{action_label(self.action)} {what} ({who}, {self.at:%Y-%m-%d %H:%M:%S})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The trail writes events with inserts that bypass save(); a save()
        # here is somebody trying to change or forge one.
        raise AppendOnlyError(
            gettext("Audit events are append-only: use signaltrail.record() to add one.")
        )

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError(gettext("Audit events are append-only: they cannot be deleted."))


class CallStatus(models.TextChoices):
    """Where a call of an ``@in_background`` receiver is (see toolkit.background)."""

    PENDING = "pending", _("pending")  # waiting to be handed to the task backend
    ENQUEUED = "enqueued", _("enqueued")  # handed over, waiting for a worker
    RUNNING = "running", _("running")  # a worker is running the receiver
    DEAD = "dead", _("dead letter")  # failed every attempt; retry it from the admin


class PendingCall(models.Model):
    """A call of an ``@in_background`` receiver that has not succeeded yet (the outbox).

    The row is written in the same transaction as the change that sent the
    signal, so the call commits (or rolls back) with it, and a process that
    dies before handing the call to the task backend loses nothing: ``manage.py
    trail relay`` sends what was left behind. A worker deletes the row once the
    receiver returned; a duplicate delivery then finds no row and does nothing.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.UUIDField(_("idempotency key"), unique=True, default=uuid.uuid4, editable=False)
    receiver = models.CharField(_("receiver"), max_length=255)
    signal = models.CharField(_("signal"), max_length=255, blank=True, default="")
    model = models.CharField(_("model"), max_length=255, blank=True, default="")
    object_pk = models.CharField(_("object id"), max_length=255, blank=True, default="")
    # {"sender": ..., "changes": {...}, "kwargs": {...}}: see toolkit.background.calls.
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=CallStatus.choices, default=CallStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created at"))
    # When the relay next looks at the row: a retry is due, or a call handed
    # over (or running) since then is presumed lost.
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    last_error = models.TextField(_("last error"), blank=True, default="")

    class Meta:
        verbose_name = _("background call")
        verbose_name_plural = _("background calls")
        # The relay's one query: status IN (...) AND next_attempt_at <= now.
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="signaltrail_call_due_idx")
        ]

    def __str__(self) -> str:
        what = f" {self.model} #{self.object_pk}" if self.model else ""
        return f"{self.receiver}{what} ({self.get_status_display()})"


class DeadLetter(PendingCall):
    """The calls that failed every attempt: their own page in the admin."""

    class Meta:
        proxy = True
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")

"""The ``Event`` table: one row per recorded change or custom event."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext_lazy as _

from .exceptions import AppendOnlyError


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
        raise AppendOnlyError(_("Audit events are append-only: they cannot be updated."))

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> Any:
        raise AppendOnlyError(_("Audit events are append-only: they cannot be deleted."))

    delete.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        # Refused before Django opens its atomic(savepoint=False) block: an
        # error raised inside it would break the caller's transaction.
        raise AppendOnlyError(_("Audit events are append-only: they cannot be updated."))

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
        related_name="+",
    )
    actor_label = models.TextField(_("actor label"), blank=True, default="")
    content_type = models.ForeignKey(
        ContentType,
        verbose_name=_("content type"),
        null=True,
        blank=True,
        # A content type with events must not vanish with its trail.
        on_delete=models.PROTECT,
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
        return f"{self.action} {what} ({who}, {self.at:%Y-%m-%d %H:%M:%S})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The trail writes events with inserts that bypass save(); a save()
        # here is somebody trying to change or forge one.
        raise AppendOnlyError(
            _("Audit events are append-only: use signaltrail.record() to add one.")
        )

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError(_("Audit events are append-only: they cannot be deleted."))

"""The trail in the Django admin: a read-only list and detail page.

Also the outbox of ``@in_background`` receivers, and its dead letters.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from .models import CallStatus, DeadLetter, Event, PendingCall, action_label


class ActionFilter(admin.AllValuesFieldListFilter):
    """The actions in the trail, by their labels in the active language.

    Filters on the stored value (``?action=update``) like the default filter.
    """

    def choices(self, changelist: Any) -> Any:
        values = [str(v) for v in self.lookup_choices if v is not None]
        choices = super().choices(changelist)
        yield next(choices)  # "All"
        # Then one choice per non-null value, in lookup_choices' order; with
        # facets on, its display is "value (count)".
        for value, choice in zip(values, choices):  # noqa: B905 (choices is longer)
            display = str(choice["display"])
            if display.startswith(value):
                choice["display"] = action_label(value) + display[len(value) :]
            yield choice
        yield from choices


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = (
        "at",
        "action_display",
        "object_repr",
        "content_type",
        "actor_label",
        "short_changes",
    )
    list_filter = (("action", ActionFilter), "content_type", "at")
    search_fields = ("object_repr", "object_pk", "actor_label")
    # No date_hierarchy: it runs a DISTINCT date-truncation over the whole table
    # on every page load (slow on a trail of millions of rows), and on MySQL/
    # MariaDB without time zone tables and TIME_ZONE != UTC it fails with a 500.
    # The "at" list filter uses plain range lookups instead.
    list_select_related = ("content_type",)
    show_full_result_count = False
    fields = (
        "at",
        "action_display",
        "actor",
        "actor_label",
        "content_type",
        "object_pk",
        "object_repr",
        "changes_table",
        "context_table",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("action"), ordering="action")
    def action_display(self, obj: Event) -> str:
        return action_label(obj.action)

    @admin.display(description=_("changes"))
    def short_changes(self, obj: Event) -> str:
        names = list(obj.changes) if isinstance(obj.changes, dict) else []
        return ", ".join(names[:6]) + ("…" if len(names) > 6 else "")

    @admin.display(description=_("changes"))
    def changes_table(self, obj: Event) -> str:
        changes = obj.changes if isinstance(obj.changes, dict) else {}
        rows = []
        for name, value in changes.items():
            if isinstance(value, list) and len(value) == 2:
                old, new = (_show(v) for v in value)
            else:
                old, new = "", _show(value)
            rows.append((name, old, new))
        if not rows:
            return "—"
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            _("field"),
            _("old value"),
            _("new value"),
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description=_("context"))
    def context_table(self, obj: Event) -> str:
        context = obj.context if isinstance(obj.context, dict) else {}
        if not context:
            return "—"
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join(
                "", "<tr><th>{}</th><td>{}</td></tr>", ((k, _show(v)) for k, v in context.items())
            ),
        )


def _show(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# -- background calls (toolkit.background): the outbox and its dead letters ----


@admin.register(PendingCall)
class PendingCallAdmin(admin.ModelAdmin):
    """The calls of ``@in_background`` receivers that have not succeeded yet.

    Read-only: a call is changed only by the worker and the relay. "Retry"
    sends dead letters (and stuck pending calls) again with a fresh set of
    attempts; deleting a call discards it.
    """

    list_display = (
        "receiver",
        "status",
        "attempts",
        "model",
        "object_pk",
        "created_at",
        "next_attempt_at",
        "short_error",
    )
    list_filter = ("status", "receiver")
    search_fields = ("receiver", "model", "object_pk")
    ordering = ("-id",)
    show_full_result_count = False
    actions = ("retry",)
    fields = (
        "key",
        "receiver",
        "signal",
        "status",
        "attempts",
        "model",
        "object_pk",
        "created_at",
        "next_attempt_at",
        "payload_table",
        "error_text",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("last error"))
    def short_error(self, obj: PendingCall) -> str:
        lines = obj.last_error.strip().splitlines()
        return lines[-1][:120] if lines else ""

    @admin.display(description=_("last error"))
    def error_text(self, obj: PendingCall) -> str:
        return format_html("<pre>{}</pre>", obj.last_error) if obj.last_error else "—"

    @admin.display(description=_("payload"))
    def payload_table(self, obj: PendingCall) -> str:
        payload = obj.payload if isinstance(obj.payload, dict) else {}
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join(
                "", "<tr><th>{}</th><td>{}</td></tr>", ((k, _show(v)) for k, v in payload.items())
            ),
        )

    @admin.action(description=_("Retry the selected calls"), permissions=("delete",))
    def retry(self, request: HttpRequest, queryset: Any) -> None:
        from .toolkit.background.outbox import retry

        n = retry(queryset)
        skipped = queryset.count() - n
        self.message_user(
            request,
            _("%(n)d call(s) will be sent again.") % {"n": n},
            messages.SUCCESS if n else messages.WARNING,
        )
        if skipped:
            self.message_user(
                request,
                _("%(n)d call(s) skipped: only dead letters and pending calls are retried.")
                % {"n": skipped},
                messages.WARNING,
            )


@admin.register(DeadLetter)
class DeadLetterAdmin(PendingCallAdmin):
    """The calls that failed every attempt, waiting for someone to retry or discard them."""

    list_filter = ("receiver",)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(status=CallStatus.DEAD)

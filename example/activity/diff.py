"""Turning a trail event's ``changes`` into rows a person can read.

The trail stores raw values (foreign keys as pks, choices as their stored
value, datetimes as ISO 8601): this shows field labels, related objects'
names, choice labels and local dates instead, in the active language.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

ACTION_LABELS = {
    "create": _("created"),
    "update": _("changed"),
    "delete": _("deleted"),
    "m2m_add": _("added"),
    "m2m_remove": _("removed"),
    "m2m_clear": _("cleared"),
    "login": _("logged in"),
    "logout": _("logged out"),
    "login_failed": _("failed to log in"),
    "trail_paused": _("paused the trail"),
}

EMPTY = "—"


@dataclass(frozen=True)
class Change:
    label: str
    old: str = ""
    new: str = ""
    kind: str = "set"  # "set" (old → new), "value", "add", "remove", "clear" or "note"


def action_label(action: str) -> str:
    return str(ACTION_LABELS.get(action, action.replace("_", " ")))


def describe(event: Any) -> list[Change]:
    """The changes of ``event`` as rows of (field label, old, new)."""
    changes = event.changes if isinstance(event.changes, dict) else {}
    model = event.content_type.model_class() if event.content_type_id else None
    rows = []
    for name, value in changes.items():
        field = _field(model, name)
        label = str(field.verbose_name) if field is not None else name.replace("_", " ")
        if event.action == "trail_paused" and name == "skipped":
            counts = ", ".join(f"{k}: {v}" for k, v in (value or {}).items()) or "0"
            rows.append(Change(str(_("writes skipped")), new=counts, kind="note"))
        elif isinstance(value, list) and len(value) == 2:
            old, new = value
            if event.action in ("create", "delete"):
                # A whole object: its values, without "— →" on every line.
                kept = new if event.action == "create" else old
                if kept in (None, "") or (field is not None and field.primary_key):
                    continue
                rows.append(Change(label, new=_show(field, kept), kind="value"))
            else:
                rows.append(Change(label, _show(field, old), _show(field, new)))
        elif isinstance(value, dict) and ("add" in value or "remove" in value):
            kind = "add" if "add" in value else "remove"
            names = ", ".join(_show(_target(field), pk) for pk in value[kind])
            rows.append(Change(label, new=names, kind=kind))
        elif isinstance(value, dict) and value.get("clear"):
            rows.append(Change(label, kind="clear"))
        else:
            rows.append(Change(label, new=_plain(value), kind="note"))
    return rows


def context_summary(event: Any) -> str:
    """Where the event came from: the reason, or the request's method and path."""
    ctx = event.context if isinstance(event.context, dict) else {}
    parts = []
    if ctx.get("reason"):
        parts.append(str(ctx["reason"]))
    if ctx.get("username"):
        parts.append(str(_("username: %(name)s") % {"name": ctx["username"]}))
    if ctx.get("method") and ctx.get("path"):
        parts.append(f"{ctx['method']} {ctx['path']}")
    elif ctx.get("source"):
        parts.append(str(ctx["source"]))
    if ctx.get("ip"):
        parts.append(str(ctx["ip"]))
    return " · ".join(parts)


def _field(model: Any, name: str) -> Any:
    if model is None:
        return None
    try:
        return model._meta.get_field(name)
    except Exception:
        return None


def _target(field: Any) -> Any:
    return field.related_model if field is not None and field.is_relation else None


def _show(field: Any, value: Any) -> str:
    """One stored value, shown the way the field would show it."""
    if value is None or value == "":
        return EMPTY
    if value == "***":
        return str(_("(hidden)"))
    if isinstance(field, type) and issubclass(field, models.Model):
        return _related(field, value)
    if field is None:
        return _plain(value)
    if field.is_relation and field.related_model is not None:
        return _related(field.related_model, value)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, models.BooleanField):
        return str(_("yes") if value else _("no"))
    if isinstance(field, models.DateTimeField) and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            if timezone.is_aware(parsed):
                parsed = timezone.localtime(parsed)
            return formats.date_format(parsed, "DATETIME_FORMAT")
    if isinstance(value, str) and len(value) > 120:
        return value[:117] + "…"
    return _plain(value)


def _related(model: Any, pk: Any) -> str:
    obj = model._base_manager.filter(pk=pk).first()
    return str(obj) if obj is not None else f"#{pk}"


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)

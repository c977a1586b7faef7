"""Template filters for showing trail events (see activity.diff)."""

from django import template

from ..diff import action_label, context_summary, describe

register = template.Library()

register.filter("trail_changes", describe)
register.filter("trail_action", action_label)
register.filter("trail_context", context_summary)

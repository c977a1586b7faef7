"""signaltrail: an audit trail for Django models built on signals.

The public API, importable before Django's app registry is ready::

    signaltrail.track(Model, exclude=[...], mask=[...], m2m=[...])
    signaltrail.context(actor=user, reason="...", source="...")
    signaltrail.history(obj) / as_of(obj, when) / revert(event)
    signaltrail.record(action, obj=None, **details)
    signaltrail.paused(reason="...")
"""

from .context import context
from .history import as_of, history, record, revert
from .pause import paused
from .registry import track
from .toolkit import muted, on_commit, trace
from .toolkit.background import in_background

__all__ = [
    "as_of",
    "context",
    "history",
    "in_background",
    "muted",
    "on_commit",
    "paused",
    "record",
    "revert",
    "trace",
    "track",
]
__version__ = "0.1.0.dev0"

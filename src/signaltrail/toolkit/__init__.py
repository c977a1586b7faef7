"""Using Django signals safely: ``muted``, ``on_commit`` and ``trace``.

Each concern is its own module, importable alone: ``muting`` (stop receivers
in the current context), ``receivers`` (receivers that run after commit),
``tracing`` (record receiver calls, per block or per request) and
``signalmap`` (which signals and receivers exist; ``manage.py trail
signals``). ``muted`` and ``trace`` share one dispatch hook (``_dispatch``).
"""

from .muting import muted
from .receivers import on_commit
from .tracing import TraceMiddleware, TraceRecord, trace

__all__ = ["TraceMiddleware", "TraceRecord", "muted", "on_commit", "trace"]

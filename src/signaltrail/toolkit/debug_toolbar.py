"""A Django Debug Toolbar panel showing the receivers each request ran.

``trace()`` answers "what did this block run?" in code; during development
the question is usually "what did that click run?", and the toolbar is where
people already look. :class:`SignalTracePanel` wraps the rest of the request
in a ``trace()`` block and lists every receiver call: signal, sender,
receiver, duration and what it raised.

Optional integration: this module needs django-debug-toolbar
(``pip install django-signaltrail[debug-toolbar]``) and is imported only when
listed in ``DEBUG_TOOLBAR_PANELS``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

try:
    from debug_toolbar.panels import Panel
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "signaltrail.toolkit.debug_toolbar needs django-debug-toolbar: "
        "pip install 'django-signaltrail[debug-toolbar]'"
    ) from exc

from .tracing import trace


class SignalTracePanel(Panel):
    """Every receiver call of the request, in the order the calls finished.

    Only the request's own thread or task is traced (``trace()`` is per
    context), so concurrent requests never show up in each other's panel.
    The stats are plain JSON (strings and floats): the toolbar's store
    serializes them, and the panel can be rendered again from the store.
    """

    is_async = True  # trace() follows the request's task under ASGI too
    title = _("Signal trace")
    template = "signaltrail/debug_toolbar/panel.html"

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        if "count" not in stats:
            return ""
        count = stats["count"]
        return ngettext(
            "%(count)d receiver call, %(total).2f ms",
            "%(count)d receiver calls, %(total).2f ms",
            count,
        ) % {"count": count, "total": stats["total_ms"]}

    def process_request(self, request: Any) -> Any:
        if isinstance(request, ASGIRequest):
            return self._aprocess_request(request)
        with trace() as self._trace:
            return super().process_request(request)

    async def _aprocess_request(self, request: Any) -> Any:
        # The block must be entered in the task that awaits the view, not in
        # the sync call that merely creates the coroutine.
        with trace() as self._trace:
            return await super().process_request(request)

    def generate_stats(self, request: Any, response: Any) -> None:
        traced = getattr(self, "_trace", None)
        records = [asdict(r) for r in traced] if traced is not None else []
        self.record_stats(
            {
                "records": records,
                "count": len(records),
                "total_ms": sum(r["duration_ms"] for r in records),
            }
        )

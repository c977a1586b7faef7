"""Settings for signaltrail, read lazily from ``settings.SIGNALTRAIL``.

Every setting is read through :data:`conf` at the moment it is needed, never
cached at import time, so ``override_settings(SIGNALTRAIL=...)`` works in tests
and the defaults live in exactly one place.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # {"app_label.Model": {"exclude": [...], "mask": [...], "m2m": [...]}}
    "MODELS": {},
    # Track every model of the project (minus EXCLUDE_MODELS and Django's own
    # bookkeeping models listed in ALWAYS_EXCLUDED).
    "ALL_MODELS": False,
    "EXCLUDE_MODELS": [],
    # Field names excluded on every tracked model (e.g. "updated_at").
    "GLOBAL_EXCLUDE": [],
    # Field names masked on every tracked model.
    "GLOBAL_MASK": ["password"],
    # Record login, logout and failed logins from django.contrib.auth signals.
    "AUTH_EVENTS": True,
    # Header carrying a request id set by a proxy; generated when absent.
    "REQUEST_ID_HEADER": "X-Request-ID",
    # Where the middleware reads the client address from. None: REMOTE_ADDR.
    # Set e.g. "HTTP_X_FORWARDED_FOR" only behind a proxy you trust.
    "IP_HEADER": None,
    # Longest text kept for object_repr and actor_label.
    "REPR_MAX_LENGTH": 200,
    # Rows handled per batch by the bulk paths (update, bulk_update,
    # bulk_create): bounds memory, and the queries per batch are constant.
    "BULK_BATCH_SIZE": 2000,
    "TRACE_REQUESTS": False,  # toolkit.tracing.TraceMiddleware: log receivers per request
}

# Models that are never tracked by ALL_MODELS: the trail itself and tables
# that change on every request and mean nothing in an audit.
ALWAYS_EXCLUDED = frozenset(
    {
        "signaltrail.Event",
        "sessions.Session",
        "contenttypes.ContentType",
        "admin.LogEntry",
        "migrations.Migration",
    }
)

MASK = "***"


class Settings:
    """Attribute access to ``settings.SIGNALTRAIL`` with defaults."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(name)
        user = getattr(settings, "SIGNALTRAIL", None) or {}
        if not isinstance(user, dict):
            # Reported by the system check signaltrail.E001; behave as unset.
            return DEFAULTS[name]
        return user.get(name, DEFAULTS[name])

    @property
    def raw(self) -> Any:
        return getattr(settings, "SIGNALTRAIL", None)


conf = Settings()

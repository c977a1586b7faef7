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
    # PostgreSQL with psycopg 3: send an autocommit write's BEGIN with its
    # first statement, and an autocommit update's event in one statement
    # with its UPDATE (signaltrail.begin): fewer round trips. False: psycopg
    # sends BEGIN itself and the event goes after the row.
    "POSTGRES_BEGIN_WITH_ROW": True,
    "TRACE_REQUESTS": False,  # toolkit.tracing.TraceMiddleware: log receivers per request
    # @in_background receivers (toolkit.background). Where calls are sent:
    # "tasks" (django.tasks, through the TASK_BACKEND alias of settings.TASKS)
    # or "celery" (the current Celery app; task name "signaltrail.run_call").
    "BACKGROUND": "tasks",
    "TASK_BACKEND": "default",
    "TASK_QUEUE": "default",
    # A failing call is retried after RELAY_BACKOFF seconds, then twice as
    # long each time (at most RELAY_BACKOFF_MAX), and parked as a dead letter
    # after RELAY_MAX_ATTEMPTS attempts.
    "RELAY_MAX_ATTEMPTS": 5,
    "RELAY_BACKOFF": 30,
    "RELAY_BACKOFF_MAX": 3600,
    # Seconds the relay leaves a new call to the after-commit hand-over
    # before sending it itself.
    "RELAY_GRACE": 5,
    # Seconds a call may wait in the task queue, or run, before the relay
    # considers it lost and sends it again (at-least-once delivery).
    "RELAY_TIMEOUT": 600,
}

# Models that are never tracked by ALL_MODELS: the trail itself and tables
# that change on every request and mean nothing in an audit.
ALWAYS_EXCLUDED = frozenset(
    {
        "signaltrail.Event",
        "signaltrail.PendingCall",
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

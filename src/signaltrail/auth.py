"""Login, logout and failed logins, recorded from django.contrib.auth's signals."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import router

from .conf import conf
from .context import current
from .middleware import request_metadata
from .reprs import object_repr
from .writer import Entry, write


def _details(request: Any) -> dict[str, Any]:
    # Outside TrailMiddleware (or before it runs) take what the request says.
    if request is not None and "request_id" not in current().metadata:
        try:
            return request_metadata(request)
        except Exception:
            return {}
    return {}


def _alias() -> str:
    from .models import Event

    return router.db_for_write(Event) or "default"


def on_logged_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if not conf.AUTH_EVENTS or user is None:
        return
    write(
        _alias(),
        [
            Entry(
                "login",
                user._meta.model,
                user.pk,
                object_repr(user),
                {},
                _details(request),
                actor=user,
            )
        ],
    )


def on_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if not conf.AUTH_EVENTS or user is None:
        return
    write(
        _alias(),
        [
            Entry(
                "logout",
                user._meta.model,
                user.pk,
                object_repr(user),
                {},
                _details(request),
                actor=user,
            )
        ],
    )


def on_login_failed(
    sender: Any, credentials: Any = None, request: Any = None, **kwargs: Any
) -> None:
    if not conf.AUTH_EVENTS:
        return
    credentials = credentials or {}
    field = get_user_model().USERNAME_FIELD
    username = credentials.get(field, credentials.get("username", ""))
    # Only the attempted username: never the password or other credentials.
    details = {**_details(request), "username": str(username)[: conf.REPR_MAX_LENGTH]}
    write(_alias(), [Entry("login_failed", details=details)])


def connect() -> None:
    uid = "signaltrail.auth"
    user_logged_in.connect(on_logged_in, dispatch_uid=uid)
    user_logged_out.connect(on_logged_out, dispatch_uid=uid)
    user_login_failed.connect(on_login_failed, dispatch_uid=uid)

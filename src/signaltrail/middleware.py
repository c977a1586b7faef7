"""``TrailMiddleware``: the actor and request metadata of every request's events."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from .conf import conf
from .context import context

# Used with fullmatch(): with match(), "$" would accept a trailing newline,
# which then fails the response (header values can't contain newlines).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(request: HttpRequest) -> str:
    """The id a proxy sent in the request-id header if it looks sane, else a new one."""
    header = conf.REQUEST_ID_HEADER
    incoming = request.headers.get(header, "") if header else ""
    return incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def client_ip(request: HttpRequest) -> str | None:
    if conf.IP_HEADER:
        forwarded = request.META.get(conf.IP_HEADER, "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64] or None
    return request.META.get("REMOTE_ADDR") or None


def request_metadata(request: HttpRequest, rid: str | None = None) -> dict[str, Any]:
    return {
        "ip": client_ip(request),
        "request_id": rid or request_id(request),
        "method": request.method,
        "path": request.path[:500],
        "user_agent": request.headers.get("User-Agent", "")[:500],
        "source": "web",
    }


def _lazy_user(request: HttpRequest) -> Callable[[], Any]:
    # Read request.user only when an event is written: a request that writes
    # nothing costs nothing, and a user authenticated inside the view (Django
    # REST framework sets the HttpRequest's user when it authenticates) counts.
    return lambda: getattr(request, "user", None)


class TrailMiddleware:
    """Sets ``signaltrail.context`` for the request, in sync and async stacks.

    Place it after ``AuthenticationMiddleware``. The request id is also sent
    back in the response's request-id header.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        metadata = request_metadata(request)
        with context(actor=_lazy_user(request), **metadata):
            response = self.get_response(request)
        return self._finish(response, metadata)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        metadata = request_metadata(request)
        with context(actor=_lazy_user(request), **metadata):
            response = await self.get_response(request)  # type: ignore[misc]
        return self._finish(response, metadata)

    def _finish(self, response: Any, metadata: dict[str, Any]) -> Any:
        header = conf.REQUEST_ID_HEADER
        if header and hasattr(response, "headers") and header not in response.headers:
            response.headers[header] = metadata["request_id"]
        return response

"""The Debug Toolbar panel shows the receivers a request ran, with a real toolbar.

The toolbar is installed by tests/settings.py only when django-debug-toolbar is
(with this panel as its only panel), but its middleware is added here alone, so
no other test's requests are traced. The views and the toolbar's URLs live in
this module (``pytest.mark.urls``): a panel's content is fetched the way the
toolbar's JavaScript does, from ``render_panel`` with the request's id, i.e.
from the toolbar's store, not from the live request.
"""

from __future__ import annotations

import html
import re

import pytest
from django.db.models.signals import post_save
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path
from django.utils import translation

pytest.importorskip("debug_toolbar", reason="the panel is an optional integration")

from signaltrail.toolkit import _dispatch
from tests.testapp.models import Product

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]

PANEL = "SignalTracePanel"
TOOLBAR_MIDDLEWARE = "debug_toolbar.middleware.DebugToolbarMiddleware"

product_checked = Signal()


def on_product_saved(sender, instance, created, **kwargs):
    """A user's receiver, as any project has."""


def failing_check(sender, **kwargs):
    raise ValueError("stock check failed")


PAGE = "<html><body><p>done</p></body></html>"


def save_and_delete(request: HttpRequest) -> HttpResponse:
    """Creates and deletes a tracked model, then sends a custom signal robustly."""
    product = Product.objects.create(name="panel", price=1)
    product.delete()
    product_checked.send_robust(sender=Product)
    return HttpResponse(PAGE)


def quiet(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


async def acheck(request: HttpRequest) -> HttpResponse:
    """Writes nothing: the async ORM would run outside the test's transaction."""
    await product_checked.asend_robust(sender=Product)
    return HttpResponse(PAGE)


urlpatterns = [
    path("save-and-delete/", save_and_delete),
    path("quiet/", quiet),
    path("async-check/", acheck),
    path("__debug__/", include("debug_toolbar.urls")),
]


@pytest.fixture
def toolbar(settings):
    """The toolbar's middleware first, shown for every request of the test."""
    settings.MIDDLEWARE = [TOOLBAR_MIDDLEWARE, *settings.MIDDLEWARE]
    settings.DEBUG_TOOLBAR_CONFIG = {
        "SHOW_TOOLBAR_CALLBACK": lambda request: True,
        "IS_RUNNING_TESTS": False,
        "RENDER_PANELS": False,  # panels are fetched from the store, as in a browser
    }


@pytest.fixture
def receivers():
    post_save.connect(on_product_saved, sender=Product)
    product_checked.connect(failing_check)
    yield
    post_save.disconnect(on_product_saved, sender=Product)
    product_checked.disconnect(failing_check)


def _request_id(page: str) -> str:
    match = re.search(r'data-request-id="([0-9a-f]+)"', page)
    assert match, "the toolbar was not inserted in the page"
    return match.group(1)


def _panel(client, page: str) -> str:
    response = client.get(
        "/__debug__/render_panel/", {"request_id": _request_id(page), "panel_id": PANEL}
    )
    assert response.status_code == 200
    return html.unescape(response.json()["content"])


def _rows(content: str) -> list[list[str]]:
    """The table's body as text cells."""
    body = content.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in rows
    ]


def test_panel_lists_every_receiver_the_request_ran(client, toolbar, receivers):
    page = client.get("/save-and-delete/").content.decode()

    # The nav shows the count and total; the content comes from the store.
    assert re.search(r"4 receiver calls, \d+\.\d\d ms", page)
    rows = _rows(_panel(client, page))
    by_receiver = {row[2]: row for row in rows}
    assert list(by_receiver) == [
        "tests.test_debug_toolbar.on_product_saved",
        "signaltrail.capture.on_pre_delete",
        "signaltrail.capture.on_post_delete",
        "tests.test_debug_toolbar.failing_check",
    ]
    assert by_receiver["tests.test_debug_toolbar.on_product_saved"][:2] == [
        "django.db.models.signals.post_save",
        "testapp.Product",
    ]
    assert by_receiver["signaltrail.capture.on_post_delete"][0] == (
        "django.db.models.signals.post_delete"
    )
    signal, _sender, _, duration, exception = by_receiver["tests.test_debug_toolbar.failing_check"]
    assert signal == "tests.test_debug_toolbar.product_checked"
    assert exception == "ValueError('stock check failed')"
    assert float(duration) >= 0
    assert by_receiver["signaltrail.capture.on_pre_delete"][4] == ""  # no exception
    # The block ended with the request: nothing is traced afterwards.
    assert _dispatch.current() is None


def test_a_request_that_runs_no_receiver_says_so(client, toolbar):
    page = client.get("/quiet/").content.decode()

    assert re.search(r"0 receiver calls, 0\.00 ms", page)
    content = _panel(client, page)
    assert "<table>" not in content
    assert "No receiver ran during this request." in content


def test_each_request_gets_only_its_own_receivers(client, toolbar, receivers):
    first = client.get("/save-and-delete/").content.decode()
    second = client.get("/quiet/").content.decode()

    assert len(_rows(_panel(client, first))) == 4
    assert "No receiver ran" in _panel(client, second)


async def test_async_views_are_traced_too(async_client, toolbar, receivers):
    response = await async_client.get("/async-check/")
    page = response.content.decode()

    assert re.search(r"1 receiver call, \d+\.\d\d ms", page)
    # render_panel is a sync view; the store is shared, so the sync client reads it.
    rows = _rows(_panel(Client(), page))
    assert [(row[0], row[2], row[4]) for row in rows] == [
        (
            "tests.test_debug_toolbar.product_checked",
            "tests.test_debug_toolbar.failing_check",
            "ValueError('stock check failed')",
        )
    ]


@override_settings(LANGUAGE_CODE="id")
def test_the_panel_speaks_indonesian(client, toolbar):
    with translation.override("id"):
        page = client.get("/quiet/", headers={"accept-language": "id"}).content.decode()
        content = _panel(client, page)

    assert "Jejak sinyal" in page
    assert "Tidak ada penerima yang dijalankan selama permintaan ini." in content

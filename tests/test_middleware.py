"""``TrailMiddleware``: every event written during a request says who and from where.

Sync views, async views (under WSGI and under ASGI), and users authenticated
inside the view by Django REST framework; the actor is looked up only when an
event is written; the request id is echoed in the response and a hostile
incoming one is replaced.
"""

import re

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from signaltrail.models import Event
from tests.testapp.models import Product

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
UA = "Mozilla/5.0 (signaltrail tests)"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


def event_for(response, action="create"):
    assert response.status_code in (200, 201), response.content
    return Event.objects.get(
        content_type__model="product", object_pk=str(response.json()["pk"]), action=action
    )


def assert_request_context(event, *, method, path, request_id=None):
    ctx = event.context
    assert ctx["ip"] == "127.0.0.1"
    assert ctx["method"] == method
    assert ctx["path"] == path
    assert ctx["user_agent"] == UA
    assert ctx["source"] == "web"
    if request_id is None:
        assert GENERATED_ID.match(ctx["request_id"])
    else:
        assert ctx["request_id"] == request_id


# -- sync views ----------------------------------------------------------------


@pytest.mark.django_db
def test_sync_view_records_actor_and_request_metadata(client, alice):
    client.force_login(alice)
    response = client.post(
        "/trail-test/products/",
        {"name": "Lamp"},
        headers={"User-Agent": UA, "X-Request-ID": "req-42.abc"},
    )

    event = event_for(response)
    assert event.actor == alice
    assert event.actor_label == "alice"
    assert_request_context(
        event, method="POST", path="/trail-test/products/", request_id="req-42.abc"
    )
    assert response.headers["X-Request-ID"] == "req-42.abc"


@pytest.mark.django_db
def test_a_request_id_is_generated_when_none_is_sent(client):
    first = client.post("/trail-test/products/", headers={"User-Agent": UA})
    second = client.post("/trail-test/products/", headers={"User-Agent": UA})

    ids = []
    for response in (first, second):
        event = event_for(response)
        assert event.actor is None  # anonymous
        assert event.actor_label == ""
        assert_request_context(event, method="POST", path="/trail-test/products/")
        assert response.headers["X-Request-ID"] == event.context["request_id"]
        ids.append(event.context["request_id"])
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 500,
        "abc\ndef",
        "abc\n",  # `$` in a regex accepts a trailing newline
        "abc\r\nSet-Cookie: x=1",
        "<script>alert(1)</script>",
        "two words",
        "",
    ],
)
@pytest.mark.django_db
def test_a_hostile_request_id_is_replaced(client, hostile):
    response = client.post("/trail-test/products/", headers={"X-Request-ID": hostile})

    event = event_for(response)
    rid = event.context["request_id"]
    assert GENERATED_ID.match(rid), rid
    assert response.headers["X-Request-ID"] == rid


@pytest.mark.django_db
def test_the_response_carries_the_request_id_even_when_nothing_is_written(client):
    response = client.get("/trail-test/nothing/", headers={"X-Request-ID": "abc-123"})

    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123"
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_ip_header_is_used_when_configured(client, settings):
    settings.SIGNALTRAIL = {"IP_HEADER": "HTTP_X_FORWARDED_FOR"}
    response = client.post(
        "/trail-test/products/", headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    )

    assert event_for(response).context["ip"] == "203.0.113.7"


@pytest.mark.django_db
def test_ip_header_is_ignored_unless_configured(client):
    response = client.post("/trail-test/products/", headers={"X-Forwarded-For": "203.0.113.7"})

    assert event_for(response).context["ip"] == "127.0.0.1"


# -- async views ---------------------------------------------------------------


@pytest.mark.django_db
def test_async_view_under_wsgi_records_actor_and_metadata(client, alice):
    client.force_login(alice)
    response = client.post(
        "/trail-test/async/products/",
        {"name": "Lamp"},
        headers={"User-Agent": UA, "X-Request-ID": "wsgi-async"},
    )

    event = event_for(response)
    assert event.actor == alice
    assert_request_context(
        event, method="POST", path="/trail-test/async/products/", request_id="wsgi-async"
    )
    assert response.headers["X-Request-ID"] == "wsgi-async"


@pytest.mark.django_db
def test_async_views_under_asgi_record_actor_and_metadata(alice):
    """The whole stack is async here (ASGIHandler, async middleware chain)."""
    # async_to_sync from the test's thread: the ORM calls the views make through
    # sync_to_async run on this thread, inside the test's transaction.
    aclient = AsyncClient()
    aclient.force_login(alice)

    created = async_to_sync(aclient.post)(
        "/trail-test/async/products/",
        {"name": "Lamp"},
        headers={"User-Agent": UA, "X-Request-ID": "asgi-create"},
    )
    event = event_for(created)
    assert event.actor == alice
    assert_request_context(
        event, method="POST", path="/trail-test/async/products/", request_id="asgi-create"
    )
    assert created.headers["X-Request-ID"] == "asgi-create"

    pk = created.json()["pk"]
    updated = async_to_sync(aclient.post)(
        f"/trail-test/async/products/{pk}/", {"price": "7.50"}, headers={"User-Agent": UA}
    )
    event = event_for(updated, action="update")
    assert event.actor == alice
    assert event.changes["price"] == ["2.00", "7.50"]
    assert_request_context(event, method="POST", path=f"/trail-test/async/products/{pk}/")
    assert updated.headers["X-Request-ID"] == event.context["request_id"]


# -- the actor is resolved lazily ------------------------------------------------


def user_queries(queries):
    return [q["sql"] for q in queries.captured_queries if "auth_user" in q["sql"]]


@pytest.mark.django_db
def test_a_request_that_writes_nothing_never_looks_the_user_up(client, alice):
    client.force_login(alice)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/trail-test/nothing/")

    assert response.status_code == 200
    assert user_queries(queries) == []


@pytest.mark.django_db
def test_a_request_that_writes_looks_the_user_up(client, alice):
    """The counterpart of the test above: the user query is there when it is needed."""
    client.force_login(alice)

    with CaptureQueriesContext(connection) as queries:
        response = client.post("/trail-test/products/")

    assert event_for(response).actor == alice
    assert user_queries(queries)


@pytest.mark.django_db
def test_a_user_authenticated_by_drf_token_inside_the_view_is_the_actor(client, alice):
    token = Token.objects.create(user=alice)

    response = client.post(
        "/trail-test/api/products/",
        {"name": "via API"},
        headers={"Authorization": f"Token {token.key}", "User-Agent": UA},
    )

    assert response.status_code == 201, response.content
    event = event_for(response)
    assert event.actor == alice
    assert event.actor_label == "alice"
    assert_request_context(event, method="POST", path="/trail-test/api/products/")


@pytest.mark.django_db
def test_drf_view_refuses_a_bad_token_and_records_nothing(client):
    response = client.post(
        "/trail-test/api/products/", headers={"Authorization": "Token not-a-real-token"}
    )

    assert response.status_code == 401
    assert not Product.objects.exists()
    assert not Event.objects.exists()
